"""A reward model trained here: a Bradley–Terry head on the loaded model's own features.

RLHF steers a model with a learned teacher signal, the reward: a number that says how much people
prefer one response to another. It is learned from preference pairs (prompt, chosen, rejected)
with the Bradley–Terry model, ``P(chosen ≻ rejected) = σ(r(chosen) − r(rejected))``. Here the
reward is a linear head on the frozen language model's residual stream — the mean over the
response's tokens at one layer, standardised — so training takes seconds on a CPU and the reward
can be read, attributed token by token, and compared with a steering vector in the same space.

The layer is chosen on a validation split of the training prompts (never the test prompts), and
the split is by prompt: no prompt's responses are in both train and test.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from interp.activations import record
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs import Progress, RunSpec, check_count, check_finite, default_of
from interp.tokens import baseline_token_id, pad_rows, tokenize
from steering.rlhf.preferences import MAX_PAIRS, MIN_PAIRS, PreferencePair, split_by_prompt

CANDIDATE_LAYERS = (10, 15, 20, 25)
MAX_REWARD_ZIP_BYTES = 64 * 1024 * 1024  # a head is d_model floats x 3; anything near this is not one


def _conversation_ids(model: LoadedModel, prompt: str, response: str) -> tuple[list[int], int]:
    """Token ids of a user turn and an assistant reply, and where the reply starts."""
    tokenizer = model.tokenizer
    if getattr(tokenizer, "chat_template", None):
        head = tokenize(model, prompt, chat=True)
        ids = head + tokenizer(response, add_special_tokens=False).input_ids
        return ids, len(head)
    head = tokenize(model, prompt + "\n")
    return head + tokenizer(response, add_special_tokens=False).input_ids, len(head)


def response_features(
    model: LoadedModel,
    prompts: Sequence[str],
    responses: Sequence[str],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Mean residual stream (``resid_post``) over each response's tokens: ``[n, len(layers), d_model]``.

    ``progress(fraction, message)`` hears of each batch of ``batch_size`` responses.
    """
    pad = baseline_token_id(model)
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    out = []
    for start in range(0, len(prompts), batch_size):
        if progress is not None:
            progress(start / len(prompts), f"{start} of {len(prompts)} replies read")
        encoded = [
            _conversation_ids(model, p, r)
            for p, r in zip(prompts[start : start + batch_size], responses[start : start + batch_size], strict=True)
        ]
        tokens = pad_rows([ids for ids, _ in encoded], pad, side="right").tokens  # real positions are unaffected
        weights = torch.zeros(tokens.shape)
        for i, (ids, begin) in enumerate(encoded):
            weights[i, begin : len(ids)] = 1.0  # the response's tokens only
        acts = record(model, tokens, names).stack(names).float().cpu()  # [layer, batch, pos, d]
        pooled = (acts * weights[None, :, :, None]).sum(dim=2) / weights.sum(dim=1)[None, :, None]
        out.append(pooled.transpose(0, 1))
    if progress is not None:
        progress(1.0, f"{len(prompts)} of {len(prompts)} replies read")
    return torch.cat(out)


@dataclasses.dataclass(frozen=True, eq=False)
class RewardModel:
    """``r(prompt, response) = w · standardise(features) + b`` on one layer of the base model."""

    layer: int
    weight: torch.Tensor
    bias: float
    mean: torch.Tensor
    std: torch.Tensor
    base_model: str
    base_weights_sha256: str
    card: dict

    def score(self, model: LoadedModel, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Rewards for (prompt, response) pairs, batched."""
        self.check_for(model)
        features = response_features(model, prompts, responses, [self.layer])[:, 0]
        return ((features - self.mean) / self.std @ self.weight + self.bias).numpy().astype(np.float64)

    def score_tensor(self, activations: torch.Tensor) -> torch.Tensor:
        """Differentiable reward from pooled activations ``[rows, d_model]`` (for attribution)."""
        return (activations - self.mean.to(activations)) / self.std.to(activations) @ self.weight.to(activations) + self.bias

    def check_for(self, model: LoadedModel) -> None:
        if self.base_weights_sha256 != model.info.weights_sha256:
            raise InputError(
                f"This reward model was trained on {self.base_model} (weights {self.base_weights_sha256[:12]}...), "
                f"not on the loaded {model.info.name}. Load that model, or train a reward model for this one."
            )

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.weight.contiguous(), "mean": self.mean.contiguous(), "std": self.std.contiguous()}
        save_file(tensors, folder / "reward_head.safetensors")
        card = {
            **self.card,
            "layer": self.layer,
            "bias": self.bias,
            "base_model": self.base_model,
            "base_weights_sha256": self.base_weights_sha256,
        }
        (folder / "reward_card.json").write_text(json.dumps(card, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path, model: LoadedModel | None = None) -> RewardModel:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            card = json.loads((folder / "reward_card.json").read_text())
            tensors = load_file(folder / "reward_head.safetensors")
            reward = cls(
                int(card["layer"]),
                tensors["weight"],
                float(card["bias"]),
                tensors["mean"],
                tensors["std"],
                card["base_model"],
                card["base_weights_sha256"],
                card,
            )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(
                f"{folder} is not a complete reward model (reward_head.safetensors + reward_card.json): {exc}."
            ) from None
        if model is not None:
            reward.check_for(model)
        return reward

    def to_zip_bytes(self) -> bytes:
        """Both files of :meth:`save` in one zip: what the page offers for download."""
        import io
        import tempfile
        import zipfile

        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(self.save(folder).iterdir()):
                archive.write(path, path.name)
        return buffer.getvalue()

    @classmethod
    def from_zip_bytes(cls, data: bytes, model: LoadedModel | None = None) -> RewardModel:
        """A reward model from a zip made by :meth:`to_zip_bytes`. Only its two files are read, by name."""
        import io
        import tempfile
        import zipfile

        names = ("reward_head.safetensors", "reward_card.json")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = {Path(info.filename).name: info for info in archive.infolist() if not info.is_dir()}
                missing = [name for name in names if name not in members]
                if missing:
                    raise InputError(f"The zip has no {', '.join(missing)}; upload the zip the Reward model tab downloads.")
                if sum(members[name].file_size for name in names) > MAX_REWARD_ZIP_BYTES:
                    raise InputError("That zip is too large to be a Steerscope reward model (a head is a few kilobytes).")
                contents = {name: archive.read(members[name]) for name in names}
        except zipfile.BadZipFile:
            raise InputError("That file is not a zip; upload the reward model zip the Reward model tab downloads.") from None
        with tempfile.TemporaryDirectory() as folder:
            for name, blob in contents.items():  # written under our own names: nothing in the zip picks a path
                (Path(folder) / name).write_bytes(blob)
            return cls.load(folder, model)


@dataclasses.dataclass(frozen=True)
class RewardTraining:
    """A trained reward model with its accuracies (pairwise: chosen scored above rejected) and loss curve."""

    reward_model: RewardModel
    train_accuracy: float
    test_accuracy: float
    validation_by_layer: dict[int, float]
    losses: tuple[float, ...]
    seconds: float


def _fit_head(chosen: torch.Tensor, rejected: torch.Tensor, *, steps: int, lr: float, l2: float, seed: int, progress=None):
    torch.manual_seed(seed)
    mean = torch.cat([chosen, rejected]).mean(dim=0)
    std = torch.cat([chosen, rejected]).std(dim=0).clamp_min(1e-6)
    c, r = (chosen - mean) / std, (rejected - mean) / std
    weight = torch.zeros(chosen.shape[1], requires_grad=True)
    optimiser = torch.optim.Adam([weight], lr=lr)
    losses = []
    for step in range(steps):
        margin = (c - r) @ weight  # the bias cancels in a Bradley-Terry difference
        loss = torch.nn.functional.softplus(-margin).mean() + l2 * weight.pow(2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if progress is not None and (step % 20 == 0 or step == steps - 1):
            progress((step + 1) / steps, f"step {step + 1}/{steps}, Bradley–Terry loss {losses[-1]:.3f}")
    return weight.detach(), mean, std, losses


def _accuracy(weight, mean, std, chosen, rejected) -> float:
    return float((((chosen - mean) / std @ weight) > ((rejected - mean) / std @ weight)).float().mean())


def train_reward_model(
    model: LoadedModel,
    train: Sequence[PreferencePair],
    test: Sequence[PreferencePair] = (),
    *,
    layers: Sequence[int] = CANDIDATE_LAYERS,
    steps: int = 300,
    lr: float = 0.05,
    l2: float = 1e-2,
    seed: int = 0,
    data_name: str = "built-in preferences",
    progress: Callable[[float, str], None] | None = None,
) -> RewardTraining:
    """Fit the Bradley–Terry head; pick the layer on a validation split of the training prompts."""
    start = time.perf_counter()
    layers = [layer for layer in layers if 0 <= layer < model.info.n_layers] or [model.info.n_layers * 2 // 3]
    report = progress or (lambda fraction, message: None)

    def part(low: float, high: float, prefix: str) -> Progress:  # one stage's share of the bar, named in the message
        return lambda fraction, message: report(low + (high - low) * fraction, f"{prefix}: {message}")

    report(0.0, "Reading the responses' activations")
    prompts = [p.prompt for p in train]
    chosen = response_features(model, prompts, [p.chosen for p in train], layers, progress=part(0.0, 0.35, "Chosen replies"))
    rejected = response_features(
        model, prompts, [p.rejected for p in train], layers, progress=part(0.35, 0.7, "Rejected replies")
    )
    inner_train, inner_val = split_by_prompt(list(train), 0.25, seed + 1)
    index = {id(p): i for i, p in enumerate(train)}
    fit_rows = torch.tensor([index[id(p)] for p in inner_train])
    val_rows = torch.tensor([index[id(p)] for p in inner_val])
    validation = {}
    share = 0.15 / len(layers)
    for j, layer in enumerate(layers):
        chooser = part(0.7 + j * share, 0.7 + (j + 1) * share, f"Choosing the layer: layer {layer} ({j + 1} of {len(layers)})")
        w, m, s, _ = _fit_head(chosen[fit_rows, j], rejected[fit_rows, j], steps=steps, lr=lr, l2=l2, seed=seed, progress=chooser)
        validation[layer] = _accuracy(w, m, s, chosen[val_rows, j], rejected[val_rows, j])
    best = max(layers, key=lambda layer: (validation[layer], -layer))
    j = layers.index(best)
    weight, mean, std, losses = _fit_head(
        chosen[:, j], rejected[:, j], steps=steps, lr=lr, l2=l2, seed=seed,
        progress=part(0.85, 0.95, f"Training the head on layer {best}"),
    )  # fmt: skip
    train_accuracy = _accuracy(weight, mean, std, chosen[:, j], rejected[:, j])
    test_accuracy = float("nan")
    if test:
        report(0.95, f"Scoring the {len(test)} held-out pairs")
        test_chosen = response_features(model, [p.prompt for p in test], [p.chosen for p in test], [best])[:, 0]
        test_rejected = response_features(model, [p.prompt for p in test], [p.rejected for p in test], [best])[:, 0]
        test_accuracy = _accuracy(weight, mean, std, test_chosen, test_rejected)
    card = {
        "data": data_name,
        "pairs_train": len(train),
        "pairs_test": len(test),
        "seed": seed,
        "steps": steps,
        "l2": l2,
        "pooling": "mean of resid_post over the response tokens (chat template), standardised",
        "validation_accuracy_by_layer": {str(k): round(v, 4) for k, v in validation.items()},
        "train_accuracy": round(train_accuracy, 4),
        "test_accuracy": round(test_accuracy, 4) if test else None,
    }
    reward = RewardModel(best, weight, 0.0, mean, std, model.info.name, model.info.weights_sha256, card)
    report(1.0, "Done")
    return RewardTraining(reward, train_accuracy, test_accuracy, validation, tuple(losses), time.perf_counter() - start)


def reward_attribution(
    model: LoadedModel, reward: RewardModel, prompt: str, response: str, method: str = "feature_ablation", **settings
):
    """Which tokens earned the reward: :func:`interp.attribution.attribute` with the reward as its target.

    The conversation (chat template, prompt, response) is attributed token by token; the reward
    is pooled over the response's tokens exactly as when scoring.
    """
    from interp.attribution import Target, attribute
    from interp.hooks import intervene

    reward.check_for(model)
    ids, begin = _conversation_ids(model, prompt, response)
    name = f"blocks.{reward.layer}.hook_resid_post"

    def score(token_ids: torch.Tensor) -> torch.Tensor:
        kept: dict[str, torch.Tensor] = {}

        def keep(activation: torch.Tensor, site) -> torch.Tensor:
            kept["resid"] = activation
            return activation  # returned, so gradients flow through it

        with intervene(model, {name: keep}):
            model.bridge(token_ids, logits_to_keep=1)
        return reward.score_tensor(kept["resid"][:, begin:].float().mean(dim=1))

    return attribute(model, ids, Target.scalar(score, "reward"), method, **settings)


def reward_scorer(model: LoadedModel, reward: RewardModel, prompt: str = ""):
    """The reward model as a steering behaviour scorer (texts are scored as replies to ``prompt``)."""
    from steering.scores import Scorer

    return Scorer("reward model", "reward (logit units)", lambda texts: reward.score(model, [prompt] * len(texts), list(texts)))


@dataclasses.dataclass(frozen=True)
class RewardTrainingRun(RunSpec):
    """Train a reward model on preference pairs (split by prompt into train and held-out test inside the run)."""

    kind: ClassVar[str] = "reward_model"
    title: ClassVar[str] = "Reward model"
    mirrors = (train_reward_model,)

    pairs: tuple[PreferencePair, ...]  # all of them: the run splits them by prompt, as the page shows
    data_name: str = default_of(train_reward_model, "data_name")  # "built-in", "upload" or a file name
    layers: tuple[int, ...] = default_of(train_reward_model, "layers")  # candidates; the best on validation is kept
    steps: int = default_of(train_reward_model, "steps")
    lr: float = default_of(train_reward_model, "lr")
    l2: float = default_of(train_reward_model, "l2")
    seed: int = default_of(train_reward_model, "seed")

    def __post_init__(self) -> None:
        check_count("number of preference pairs", len(self.pairs), low=MIN_PAIRS, high=MAX_PAIRS)
        check_count("number of candidate layers", len(self.layers), high=64)
        for layer in self.layers:
            check_count("layer", layer, low=0)
        check_count("number of training steps", self.steps, high=100_000)
        check_finite("learning rate", self.lr, low=1e-9)
        check_finite("L2 penalty", self.l2, low=0.0)

    def split(self) -> tuple[list[PreferencePair], list[PreferencePair]]:
        """The (train, test) pairs this run uses."""
        return split_by_prompt(self.pairs)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> RewardTraining:
        train, test = self.split()
        return train_reward_model(
            model, train, test, layers=self.layers, steps=self.steps, lr=self.lr, l2=self.l2, seed=self.seed,
            data_name=self.data_name, progress=progress,
        )  # fmt: skip
