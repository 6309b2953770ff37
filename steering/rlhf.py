"""RLHF demos beside steering: best-of-N sampling and DPO fine-tuning, judged by the same reward.

* **Best-of-N**: draw N samples, keep the one the reward model likes best. It needs no training,
  only N times the compute, and moves the output distribution by at most ``log N − (N−1)/N`` nats
  of KL divergence from the base model (the standard analytic bound for best-of-N; Stiennon et al.
  2020, Beirami et al. 2024). The curve of kept-sample reward against N shows what that buys.
* **DPO** (Rafailov et al. 2023) fine-tunes the model directly on preference pairs: it raises the
  log-probability of chosen over rejected responses relative to a frozen reference copy, which is
  the RLHF objective solved in closed form — no reward model, no sampling. Here TRL's
  ``DPOTrainer`` trains a small PEFT LoRA adapter on a *separate* copy of the model (the shared
  one is never touched), for a bounded number of CPU steps, stoppable, keeping the adapter so far.
* **Inside view**: how much the adapter moves each layer's residual stream, and whether it moves
  it along the steering direction for the same trait — does fine-tuning find the steering vector?
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from interp.errors import InputError
from interp.generation import generate_batch
from interp.loading import LoadedModel, load_model
from steering.apply import steering_hooks as vector_hooks
from steering.reward import PreferencePair, RewardModel, response_features
from steering.scores import perplexity
from steering.vector import SteeringVector


def kl_bound(n: int) -> float:
    """Upper bound on KL(best-of-N || base) in nats: ``log N - (N - 1) / N``."""
    return math.log(n) - (n - 1) / n


@dataclasses.dataclass(frozen=True)
class BestOfN:
    """Mean reward of the kept sample for each N, over prompts and seed groups."""

    ns: tuple[int, ...]
    mean_reward: np.ndarray  # [len(ns)]
    per_group: np.ndarray  # [groups, len(ns)]
    kl_bounds: np.ndarray
    prompts: tuple[str, ...]
    samples: tuple[tuple[str, ...], ...]  # per prompt (first seed group), every sample
    rewards: tuple[tuple[float, ...], ...]


def best_of_n(
    model: LoadedModel,
    reward: RewardModel,
    prompts: Sequence[str],
    *,
    ns: Sequence[int] = (1, 2, 4, 8),
    groups: int = 2,
    max_new_tokens: int = 30,
    temperature: float = 1.0,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> BestOfN:
    """Sample ``max(ns)`` replies per prompt per seed group; for each N keep the best of the first N.

    Taking the first N of one sample list (rather than fresh samples per N) is what makes the
    curve comparable across N: the kept reward can only rise as N grows.
    """
    ns = tuple(sorted(set(int(n) for n in ns)))
    if ns[0] < 1:
        raise InputError("N must be at least 1.")
    top = ns[-1]
    curves, first_samples, first_rewards = [], (), ()
    for group in range(groups):
        if progress is not None:
            progress(
                group / groups, f"Sampling {top} replies to each of {len(prompts)} prompts (seed group {group + 1} of {groups})"
            )
        grouped = generate_batch(
            model,
            list(prompts),
            max_new_tokens=max_new_tokens,
            n_samples=top,
            temperature=temperature,
            seed=seed + 10_000 * group,
            chat=True,
        )
        rewards = np.array(
            [reward.score(model, [p] * top, [g.text for g in samples]) for p, samples in zip(prompts, grouped, strict=True)]
        )
        curves.append([float(rewards[:, :n].max(axis=1).mean()) for n in ns])
        if group == 0:
            first_samples = tuple(tuple(g.text for g in samples) for samples in grouped)
            first_rewards = tuple(tuple(float(r) for r in row) for row in rewards)
    per_group = np.array(curves)
    return BestOfN(
        ns, per_group.mean(axis=0), per_group, np.array([kl_bound(n) for n in ns]), tuple(prompts), first_samples, first_rewards
    )


# ---------------------------------------------------------------------------------------------
# DPO


@dataclasses.dataclass(frozen=True)
class DPOLogEntry:
    step: int
    loss: float
    reward_margin: float  # mean of beta * (log-ratio chosen - log-ratio rejected)
    reward_accuracy: float


@dataclasses.dataclass(frozen=True)
class DPOResult:
    adapter: Path  # PEFT LoRA adapter (safetensors) as saved
    merged: Path  # the base weights with the adapter merged in: loadable with interp.load_model
    log: tuple[DPOLogEntry, ...]
    steps_done: int
    stopped: bool
    seconds: float


def train_dpo(
    model: LoadedModel,
    pairs: Sequence[PreferencePair],
    out_dir: str | Path,
    *,
    max_steps: int = 30,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    beta: float = 0.1,
    lora_rank: int = 8,
    seed: int = 0,
    on_log: Callable[[DPOLogEntry], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stop_after_steps: int | None = None,
) -> DPOResult:
    """Train a LoRA adapter with TRL's DPOTrainer on a private copy of ``model``'s weights.

    ``stop_after_steps`` ends training early at that step while the learning-rate schedule still
    runs over ``max_steps`` (it replays a run the user stopped).
    """
    import datasets
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    if model.folder is None:
        raise InputError("DPO needs the model's checkpoint folder to make a private copy.")
    if len(pairs) < 2:
        raise InputError("DPO needs at least 2 preference pairs.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = model.tokenizer
    policy = AutoModelForCausalLM.from_pretrained(model.folder, dtype=torch.float32, attn_implementation="eager")
    targets = [name for name in ("q_proj", "v_proj", "c_attn") if any(n.endswith(name) for n, _ in policy.named_modules())]
    policy = get_peft_model(
        policy, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM")
    )

    def conversation(prompt: str) -> list[dict]:
        return [{"role": "user", "content": prompt}]

    chat = bool(getattr(tokenizer, "chat_template", None))
    records = [
        {
            "prompt": conversation(p.prompt) if chat else p.prompt + "\n",
            "chosen": [{"role": "assistant", "content": p.chosen}] if chat else p.chosen,
            "rejected": [{"role": "assistant", "content": p.rejected}] if chat else p.rejected,
        }
        for p in pairs
    ]
    log: list[DPOLogEntry] = []
    stopped = {"value": False}

    class Live(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                entry = DPOLogEntry(
                    int(state.global_step),
                    float(logs["loss"]),
                    float(logs.get("rewards/margins", math.nan)),
                    float(logs.get("rewards/accuracies", math.nan)),
                )
                log.append(entry)
                if on_log is not None:
                    on_log(entry)

        def on_step_end(self, args, state, control, **kwargs):
            if (should_stop is not None and should_stop()) or (
                stop_after_steps is not None and state.global_step >= stop_after_steps
            ):
                stopped["value"] = True
                control.should_training_stop = True

    config = DPOConfig(
        output_dir=str(out_dir / "trainer"),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        beta=beta,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=seed,
        data_seed=seed,
        max_length=128,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    start = time.perf_counter()
    trainer = DPOTrainer(
        model=policy,
        args=config,
        train_dataset=datasets.Dataset.from_list(records),
        processing_class=tokenizer,
        callbacks=[Live()],
    )
    try:
        trainer.train()
    finally:
        # Kept even when training is interrupted (the app's Stop button, Ctrl-C): the adapter so
        # far, and the merged weights that load as a model, written as whole files.
        adapter, merged = out_dir / "adapter", out_dir / "merged"
        policy.save_pretrained(adapter)
        policy.merge_and_unload().save_pretrained(merged)
        tokenizer.save_pretrained(merged)
        (out_dir / "log.json").write_text(json.dumps([dataclasses.asdict(e) for e in log]))
    return DPOResult(adapter, merged, tuple(log), log[-1].step if log else 0, stopped["value"], time.perf_counter() - start)


def partial_dpo(out_dir: str | Path) -> DPOResult | None:
    """What an interrupted :func:`train_dpo` left in ``out_dir`` (None if it saved nothing)."""
    out_dir = Path(out_dir)
    if not (out_dir / "merged" / "config.json").exists():
        return None
    log = (
        tuple(DPOLogEntry(**e) for e in json.loads((out_dir / "log.json").read_text())) if (out_dir / "log.json").exists() else ()
    )
    return DPOResult(out_dir / "adapter", out_dir / "merged", log, log[-1].step if log else 0, True, float("nan"))


def load_tuned(result: DPOResult) -> LoadedModel:
    """The DPO-tuned model as another LoadedModel (its own bridge, lock and hooks)."""
    return load_model(result.merged, device="cpu")


# ---------------------------------------------------------------------------------------------
# Comparison and the inside view


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    method: str
    mean_reward: float
    reward_gain: float
    perplexity_under_base: float
    cost: str  # what it took


def _judge(base: LoadedModel, reward: RewardModel, prompts: Sequence[str], samples_by_prompt) -> tuple[float, float]:
    """Mean reward of the replies, and their perplexity under ``base`` (geometric mean over replies)."""
    prompts_flat = [p for p, samples in zip(prompts, samples_by_prompt, strict=True) for _ in samples]
    texts = [g.text for samples in samples_by_prompt for g in samples]
    ids = [g.token_ids for samples in samples_by_prompt for g in samples]
    rewards = reward.score(base, prompts_flat, texts)
    chat_prompts = [base.tokenizer.decode(samples[0].prompt_token_ids) for samples in samples_by_prompt for _ in samples]
    ppl = perplexity(base, chat_prompts, ids)
    finite = ppl[np.isfinite(ppl)]
    return float(rewards.mean()), float(np.exp(np.log(finite).mean())) if len(finite) else math.nan


def _reply_options(max_new_tokens: int, seed: int) -> dict:
    return {"max_new_tokens": max_new_tokens, "temperature": 1.0, "seed": seed, "chat": True}


@dataclasses.dataclass(frozen=True)
class SteeringChoice:
    """The steering setting the comparison uses: the best reward gain within the fluency limit."""

    layer: int
    coefficient: float
    reward_gain: float
    perplexity_ratio: float
    within_limit: bool  # False: no cell kept perplexity within the limit; the least damaging best cell was taken
    cells: tuple[tuple[int, float, float, float], ...]  # (layer, coefficient, reward gain, perplexity ratio)


def recommend_steering(
    base: LoadedModel,
    reward: RewardModel,
    vector: SteeringVector,
    prompts: Sequence[str],
    *,
    layers: Sequence[int],
    coefficients: Sequence[float],
    n_samples: int = 1,
    max_new_tokens: int = 30,
    seed: int = 0,
    max_perplexity_ratio: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> SteeringChoice:
    """Sweep ``vector`` over layers x coefficients on the comparison's own prompts, judged by the reward model.

    The same replies, seeds and cost measure as :func:`compare`, so the setting it recommends is the
    one that comparison should use.
    """
    options = _reply_options(max_new_tokens, seed)
    base_reward, base_ppl = _judge(base, reward, prompts, generate_batch(base, list(prompts), n_samples=n_samples, **options))
    cells = []
    total = len(layers) * len(coefficients)
    for layer in layers:
        for coefficient in coefficients:
            hooks = vector_hooks(base, vector, float(coefficient), layers=[layer])
            steered = generate_batch(base, list(prompts), n_samples=n_samples, hooks=hooks, **options)
            mean_reward, ppl = _judge(base, reward, prompts, steered)
            cells.append((int(layer), float(coefficient), mean_reward - base_reward, ppl / base_ppl))
            if progress is not None:
                progress(len(cells), total)
    allowed = [c for c in cells if c[3] <= max_perplexity_ratio]
    best = max(allowed, key=lambda c: c[2]) if allowed else min(cells, key=lambda c: c[3])
    return SteeringChoice(best[0], best[1], best[2], best[3], bool(allowed), tuple(cells))


def compare(
    base: LoadedModel,
    reward: RewardModel,
    prompts: Sequence[str],
    *,
    best_of: int = 4,
    steering_hooks=None,
    steering_label: str = "steering vector",
    tuned: LoadedModel | None = None,
    n_samples: int = 2,
    max_new_tokens: int = 30,
    seed: int = 0,
) -> list[ComparisonRow]:
    """Unsteered vs best-of-N vs steering vs DPO on the same prompts, reward and seeds."""
    options = _reply_options(max_new_tokens, seed)
    rows = []

    def judged(samples_by_prompt, label, cost):
        mean_reward, ppl = _judge(base, reward, prompts, samples_by_prompt)
        rows.append(ComparisonRow(label, mean_reward, math.nan, ppl, cost))

    plain = generate_batch(base, list(prompts), n_samples=n_samples, **options)
    judged(plain, "unsteered", "1 sample")
    many = generate_batch(base, list(prompts), n_samples=n_samples * best_of, **options)
    kept = []
    for p, samples in zip(prompts, many, strict=True):
        scores = reward.score(base, [p] * len(samples), [g.text for g in samples])
        kept.append([samples[i * best_of + int(np.argmax(scores[i * best_of : (i + 1) * best_of]))] for i in range(n_samples)])
    judged(kept, f"best-of-{best_of}", f"{best_of} samples + {best_of} reward calls; KL ≤ {kl_bound(best_of):.2f} nats")
    if steering_hooks is not None:
        judged(
            generate_batch(base, list(prompts), n_samples=n_samples, hooks=steering_hooks, **options),
            steering_label,
            "1 sample, no training",
        )
    if tuned is not None:
        judged(generate_batch(tuned, list(prompts), n_samples=n_samples, **options), "DPO adapter", "fine-tuning (LoRA)")
    baseline = rows[0].mean_reward
    return [dataclasses.replace(r, reward_gain=r.mean_reward - baseline) for r in rows]


@dataclasses.dataclass(frozen=True)
class InsideView:
    """Per layer: how far the tuned model's residual stream moved, and how aligned with the steering direction."""

    layers: tuple[int, ...]
    relative_change: np.ndarray  # mean |h_tuned - h_base| / mean |h_base|
    cosine_with_steering: np.ndarray  # cos(mean(h_tuned - h_base), steering direction)


def inside_view(
    base: LoadedModel,
    tuned: LoadedModel,
    prompts: Sequence[str],
    responses: Sequence[str],
    steering_directions: dict[int, torch.Tensor],
) -> InsideView:
    """Compare the residual streams of the base and tuned models on the same (prompt, response) texts."""
    layers = tuple(range(base.info.n_layers))
    h_base = response_features(base, prompts, responses, layers)
    h_tuned = response_features(tuned, prompts, responses, layers)
    delta = h_tuned - h_base  # [n, layer, d]
    change = (delta.norm(dim=-1).mean(dim=0) / h_base.norm(dim=-1).mean(dim=0)).numpy()
    mean_delta = delta.mean(dim=0)
    cosines = np.full(len(layers), np.nan)
    for layer, direction in steering_directions.items():
        if 0 <= layer < len(layers):
            cosines[layer] = float(torch.nn.functional.cosine_similarity(mean_delta[layer], direction.float(), dim=0))
    return InsideView(layers, change, cosines)


def temporary_run_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="steerscope-dpo-"))
