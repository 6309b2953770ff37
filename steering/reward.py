"""A reward model trained here: a Bradley–Terry head on the default model's own features.

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

import csv
import dataclasses
import io
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.activations import record
from interp.tokens import baseline_token_id, pad_rows, tokenize

DATA = Path(__file__).resolve().parent / "data" / "preferences.jsonl"
CANDIDATE_LAYERS = (10, 15, 20, 25)
MAX_PAIRS = 2000
MAX_REWARD_ZIP_BYTES = 64 * 1024 * 1024  # a head is d_model floats x 3; anything near this is not one


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    trait: str = ""


def builtin_preferences() -> list[PreferencePair]:
    """160 pairs written for Steerscope: 80 prompts, helpful vs unhelpful and polite vs rude."""
    return read_preferences(DATA.name, DATA.read_bytes())


def preference_inputs(source: str, pairs: Sequence[PreferencePair]) -> dict:
    """How a kept run records its preference data: built-in by name, uploaded pairs in full (they are small)."""
    if source == "built-in":
        return {"data": "built-in"}
    return {"data": source, "pairs": [[p.prompt, p.chosen, p.rejected, p.trait] for p in pairs]}


def preferences_from_inputs(inputs: dict) -> list[PreferencePair]:
    """The pairs a kept run used (see :func:`preference_inputs`)."""
    if inputs.get("pairs") is None:
        return builtin_preferences()
    return [PreferencePair(*(str(value) for value in row)) for row in inputs["pairs"]]


def read_preferences(name: str, data: bytes) -> list[PreferencePair]:
    """Parse CSV or JSONL with ``prompt``, ``chosen``, ``rejected`` (and optional ``trait``)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{name}, line {line}: not UTF-8 text. Save the file as UTF-8.") from None
    records: list[tuple[int, dict]] = []
    if name.lower().endswith((".jsonl", ".ndjson")):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name}, line {number}, column {exc.colno}: not valid JSON ({exc.msg}).") from None
            if not isinstance(value, dict):
                raise InputError(f"{name}, line {number}: each line must be a JSON object.")
            records.append((number, value))
    elif name.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        try:
            for row in reader:
                records.append((reader.line_num, row))
        except csv.Error as exc:
            raise InputError(f"{name}, line {reader.line_num}: {exc}. Check the quotes.") from None
    else:
        raise InputError(f"{name}: upload preference pairs as .csv or .jsonl.")
    pairs = []
    for number, row in records:
        missing = [key for key in ("prompt", "chosen", "rejected") if not str(row.get(key) or "").strip()]
        if missing:
            raise InputError(f"{name}, line {number}: missing {', '.join(repr(m) for m in missing)}.")
        if str(row["chosen"]).strip() == str(row["rejected"]).strip():
            raise InputError(f"{name}, line {number}: 'chosen' and 'rejected' are the same text.")
        pairs.append(
            PreferencePair(
                str(row["prompt"]).strip(), str(row["chosen"]).strip(), str(row["rejected"]).strip(), str(row.get("trait") or "")
            )
        )
    if len(pairs) < 10:
        raise InputError(f"{name} has {len(pairs)} pair(s); a reward model needs at least 10 (100+ is better).")
    if len(pairs) > MAX_PAIRS:
        raise InputError(f"{name} has {len(pairs)} pairs; the limit is {MAX_PAIRS}.")
    return pairs


def split_by_prompt(
    pairs: Sequence[PreferencePair], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Train/test split that keeps every prompt on one side (stratified by trait)."""
    rng = random.Random(seed)
    test_prompts: set[str] = set()
    for trait in sorted({p.trait for p in pairs}):
        prompts = sorted({p.prompt for p in pairs if p.trait == trait})
        rng.shuffle(prompts)
        test_prompts.update(prompts[: max(1, round(test_fraction * len(prompts)))])
    return [p for p in pairs if p.prompt not in test_prompts], [p for p in pairs if p.prompt in test_prompts]


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
    model: LoadedModel, prompts: Sequence[str], responses: Sequence[str], layers: Sequence[int], *, batch_size: int = 16
) -> torch.Tensor:
    """Mean residual stream (``resid_post``) over each response's tokens: ``[n, len(layers), d_model]``."""
    pad = baseline_token_id(model)
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    out = []
    for start in range(0, len(prompts), batch_size):
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
        if progress is not None and step % 20 == 0:
            progress(step / steps, f"Bradley–Terry loss {losses[-1]:.3f}")
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
    report(0.0, "Reading the responses' activations")
    chosen = response_features(model, [p.prompt for p in train], [p.chosen for p in train], layers)
    rejected = response_features(model, [p.prompt for p in train], [p.rejected for p in train], layers)
    inner_train, inner_val = split_by_prompt(list(train), 0.25, seed + 1)
    index = {id(p): i for i, p in enumerate(train)}
    fit_rows = torch.tensor([index[id(p)] for p in inner_train])
    val_rows = torch.tensor([index[id(p)] for p in inner_val])
    validation = {}
    for j, layer in enumerate(layers):
        w, m, s, _ = _fit_head(chosen[fit_rows, j], rejected[fit_rows, j], steps=steps, lr=lr, l2=l2, seed=seed)
        validation[layer] = _accuracy(w, m, s, chosen[val_rows, j], rejected[val_rows, j])
    best = max(layers, key=lambda layer: (validation[layer], -layer))
    j = layers.index(best)
    report(0.5, f"Training the head on layer {best}")
    weight, mean, std, losses = _fit_head(
        chosen[:, j], rejected[:, j], steps=steps, lr=lr, l2=l2, seed=seed, progress=lambda f, m: report(0.5 + 0.4 * f, m)
    )
    train_accuracy = _accuracy(weight, mean, std, chosen[:, j], rejected[:, j])
    test_accuracy = float("nan")
    if test:
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
