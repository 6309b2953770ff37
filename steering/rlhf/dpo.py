"""DPO (Rafailov et al. 2023): fine-tune the model directly on preference pairs.

It raises the log-probability of chosen over rejected responses relative to a frozen reference copy,
which is the RLHF objective solved in closed form — no reward model, no sampling. Here TRL's
``DPOTrainer`` trains a small PEFT LoRA adapter on a *separate* copy of the model (the shared one is
never touched), for a bounded number of CPU steps, stoppable, keeping the adapter so far.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import torch

from interp.errors import InputError
from interp.loading import LoadedModel, load_model
from interp.runs import Progress, RunSpec, StopCheck, check_count, check_finite, default_of
from steering.rlhf.preferences import MAX_PAIRS, PreferencePair


@dataclasses.dataclass(frozen=True)
class DPOLogEntry:
    step: int
    loss: float
    reward_margin: float  # mean of beta * (log-ratio chosen - log-ratio rejected)
    reward_accuracy: float


@dataclasses.dataclass(frozen=True)
class DPOResult:
    """What a DPO run made: where its adapter and merged weights are, the log per step, and whether it was stopped."""

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
    policy = AutoModelForCausalLM.from_pretrained(
        model.folder, dtype=torch.float32, attn_implementation="eager", trust_remote_code=False, use_safetensors=True
    )
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


def temporary_run_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="steerscope-dpo-"))


# Trained adapters by (base weights, spec digest), so the comparison reuses the run the DPO tab made
# rather than training again. Keyed by value, so every session may share them; a folder that has gone is retrained.
_trained: dict[tuple[str, str], DPOResult] = {}
_trained_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class DPORun(RunSpec):
    """DPO fine-tuning of a LoRA adapter on preference pairs; the result is its training log and the adapter saved."""

    kind: ClassVar[str] = "dpo"
    title: ClassVar[str] = "DPO fine-tuning"
    # Training on the CPU is deterministic here, but a library update can reorder float sums.
    tolerance: ClassVar[float] = 1e-4
    mirrors = (train_dpo,)

    pairs: tuple[PreferencePair, ...]  # the pairs it trains on (the page passes the training side of the split)
    max_steps: int = default_of(train_dpo, "max_steps")
    batch_size: int = default_of(train_dpo, "batch_size")
    learning_rate: float = default_of(train_dpo, "learning_rate")
    beta: float = default_of(train_dpo, "beta")
    lora_rank: int = default_of(train_dpo, "lora_rank")
    seed: int = default_of(train_dpo, "seed")
    # Where a stopped run ended; the learning-rate schedule still runs over max_steps, so a replay retraces it.
    stop_after_steps: int | None = default_of(train_dpo, "stop_after_steps")

    def __post_init__(self) -> None:
        if len(self.pairs) < 2:
            raise InputError("DPO needs at least 2 preference pairs.")
        check_count("number of preference pairs", len(self.pairs), low=2, high=MAX_PAIRS)
        check_count("number of training steps", self.max_steps, high=10_000)
        check_count("batch size", self.batch_size, high=256)
        check_finite("learning rate", self.learning_rate, low=1e-9, high=1.0)
        check_finite("DPO beta", self.beta, low=1e-6, high=100.0)
        check_count("LoRA rank", self.lora_rank, high=512)
        if self.stop_after_steps is not None:
            check_count("step to stop after", self.stop_after_steps, high=self.max_steps)

    def train(
        self,
        model: LoadedModel,
        out_dir: str | Path,
        *,
        on_log: Callable[[DPOLogEntry], None] | None = None,
        should_stop: StopCheck | None = None,
    ) -> DPOResult:
        """Train into ``out_dir`` (which keeps the adapter if the run is interrupted), reporting each step."""
        result = train_dpo(
            model, self.pairs, out_dir, max_steps=self.max_steps, batch_size=self.batch_size, learning_rate=self.learning_rate,
            beta=self.beta, lora_rank=self.lora_rank, seed=self.seed, on_log=on_log, should_stop=should_stop,
            stop_after_steps=self.stop_after_steps,
        )  # fmt: skip
        remember(model, self.ended_at(result), result)
        return result

    def ended_at(self, result: DPOResult) -> DPORun:
        """This spec as a replay must run it: a run stopped early replays up to the step where it stopped."""
        if result.stopped and self.stop_after_steps != result.steps_done and result.steps_done > 0:
            return dataclasses.replace(self, stop_after_steps=result.steps_done)
        return self

    def run(self, model: LoadedModel, progress: Progress | None = None) -> DPOResult:
        def on_log(entry: DPOLogEntry) -> None:
            if progress is not None:
                progress(min(entry.step / self.max_steps, 1.0), f"Step {entry.step}: DPO loss {entry.loss:.3f}")

        return self.train(model, temporary_run_folder(), on_log=on_log)

    def tuned(self, model: LoadedModel) -> LoadedModel:
        """The fine-tuned model this spec makes: the adapter trained already in this process, or trained now."""
        with _trained_lock:
            result = _trained.get((model.info.weights_sha256, self.digest()))
        if result is None or not (result.merged / "config.json").exists():
            result = self.run(model)
        return load_tuned(result)


def remember(model: LoadedModel, spec: DPORun, result: DPOResult) -> None:
    """Note that ``spec`` on ``model`` made ``result`` (see :meth:`DPORun.tuned`)."""
    with _trained_lock:
        _trained[(model.info.weights_sha256, spec.digest())] = result
