"""The SAE run kinds: training a TopK SAE on a model's residual stream, stoppable and resumable.

    >>> spec = SAETraining(hook_name="blocks.9.hook_resid_pre", d_sae=4096, k=32, n_tokens=2_000_000,
    ...                    checkpoint="runs/sae-l9")
    >>> trained = spec.run(model, progress)          # progress may raise to stop; the checkpoint keeps the work
    >>> trained.quality.describe()

Stopping: the progress callback raising (the page's Stop) ends the run after the step in progress; the trainer's
state is written to ``checkpoint`` first. Running the same spec again with the same ``checkpoint`` continues from
there, exactly as if it had not stopped (the state holds the weights, Adam's moments, the dead-latent counters
and the position in the text). A checkpoint written by different settings is refused, not mixed in.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from features.activations import stream_activations, token_stream
from features.corpus import CORPORA, load_corpus
from features.quality import SAEQuality, sae_quality
from features.sae import SparseAutoencoder, hook_layer
from features.train import TopKSettings, TopKTrainer
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_choice, check_count

STATE_FILE = "training_state.safetensors"
SETTINGS_FILE = "training_settings.json"
CHECKPOINT_EVERY_STEPS = 50


@dataclasses.dataclass(frozen=True)
class TrainingPoint:
    """The training curve at one step."""

    tokens: int
    fvu: float
    dead_fraction: float


@dataclasses.dataclass(frozen=True)
class TrainedSAE:
    """A training run's SAE, its quality on held-out text, and its curve."""

    sae: SparseAutoencoder
    quality: SAEQuality
    curve: tuple[TrainingPoint, ...]
    tokens: int
    seconds: float  # this run's wall time (a resumed run counts only its own part)
    corpus: str
    corpus_origin: str
    licence: str
    model_name: str
    weights_sha256: str

    def card(self) -> dict:
        """What the SAE's card.json says: data, tokens, shape and metrics."""
        q = self.quality
        return {
            "model": self.model_name,
            "weights_sha256": self.weights_sha256,
            "hook_name": self.sae.hook_name,
            "width": self.sae.d_sae,
            "k": self.sae.k,
            "training_tokens": self.tokens,
            "data": {"corpus": self.corpus, "origin": self.corpus_origin, "licence": self.licence},
            "metrics": {
                "fvu": q.fvu,
                "l0": q.l0,
                "dead_fraction": q.dead_fraction,
                "clean_loss": q.clean_loss,
                "spliced_loss": q.spliced_loss,
                "zero_ablated_loss": q.zero_ablated_loss,
                "ce_loss_recovered": q.ce_loss_recovered,
                "evaluation_tokens": q.n_tokens,
            },
            "trainer": "Steerscope features.train (sparsify 1.3.3 SparseCoder)",
        }


@dataclasses.dataclass(frozen=True)
class SAETraining(RunSpec):
    """Train a TopK SAE at ``hook_name`` on ``n_tokens`` of ``corpus``, then measure it on held-out contexts."""

    kind = "sae_training"
    title = "SAE training"
    tolerance = 1e-4

    hook_name: str = "blocks.9.hook_resid_pre"
    d_sae: int = 4096
    k: int = 32
    corpus: str = "python-docs"
    n_tokens: int = 2_000_000
    context_tokens: int = 128
    batch_contexts: int = 16
    learning_rate: float = 0.0  # 0: sparsify's width-scaled 2e-4 / sqrt(d_sae / 2**14)
    dead_after_tokens: int = 500_000
    evaluation_contexts: int = 64  # held out: the last contexts of the text, never trained on
    seed: int = 0
    checkpoint: str | None = None  # a folder: the state is kept there on stop and every 50 steps

    def __post_init__(self) -> None:
        hook_layer(self.hook_name)
        check_choice("training text", self.corpus, CORPORA)
        check_count("SAE width", self.d_sae, low=1, high=1 << 17)
        check_count("k", self.k, low=1, high=self.d_sae)
        check_count("training tokens", self.n_tokens, low=1, high=10**9)
        check_count("context length", self.context_tokens, low=8, high=4096)
        check_count("contexts per batch", self.batch_contexts, low=1, high=1024)
        check_count("evaluation contexts", self.evaluation_contexts, low=1, high=10_000)
        TopKSettings(1, self.d_sae, self.k, self.learning_rate, self.dead_after_tokens, self.seed)  # its checks
        if self.checkpoint is not None and (not isinstance(self.checkpoint, str) or not self.checkpoint):
            raise InputError("The checkpoint must be a folder path (or None for no checkpoint).")

    def run(self, model: LoadedModel, progress: Progress | None = None) -> TrainedSAE:
        started = time.perf_counter()
        corpus = load_corpus(self.corpus)
        stream = token_stream(model, corpus.documents, context_tokens=self.context_tokens, source=self.corpus)
        n_contexts = stream.contexts.shape[0]
        if n_contexts <= self.evaluation_contexts:
            raise InputError(
                f"The {self.corpus} text makes {n_contexts} contexts of {self.context_tokens} tokens, not more than the "
                f"{self.evaluation_contexts} held out for evaluation; hold out fewer or use shorter contexts."
            )
        train_stream = dataclasses.replace(stream, contexts=stream.contexts[: -self.evaluation_contexts])
        held_out = dataclasses.replace(stream, contexts=stream.contexts[-self.evaluation_contexts :])
        settings = TopKSettings(model.info.d_model, self.d_sae, self.k, self.learning_rate, self.dead_after_tokens, self.seed)
        trainer, next_context, curve = self._resume(settings)
        report = progress or (lambda fraction, message: None)
        steps = 0
        try:
            while trainer.tokens < self.n_tokens:
                # passes over the text as often as n_tokens needs; each pass from the first context again
                if next_context >= train_stream.contexts.shape[0]:
                    next_context = 0
                batches = stream_activations(
                    model, train_stream, self.hook_name, batch_contexts=self.batch_contexts, start_context=next_context
                )
                for reached, x in batches:
                    next_context = reached
                    stats = trainer.step(x[: self.n_tokens - trainer.tokens])
                    steps += 1
                    curve.append(TrainingPoint(stats.tokens, stats.fvu, stats.dead_fraction))
                    if self.checkpoint is not None and steps % CHECKPOINT_EVERY_STEPS == 0:
                        self._save(trainer, next_context, curve)
                    report(
                        0.95 * min(1.0, trainer.tokens / self.n_tokens),
                        f"Training: {trainer.tokens:,} of {self.n_tokens:,} tokens, FVU {stats.fvu:.3f}, "
                        f"{100 * stats.dead_fraction:.1f}% dead",
                    )
                    if trainer.tokens >= self.n_tokens:
                        break
        except BaseException:
            if self.checkpoint is not None:
                self._save(trainer, next_context, curve)  # Stop (or any failure) keeps the steps done
            raise
        if self.checkpoint is not None:
            self._save(trainer, next_context, curve)
        sae = trainer.to_sae(self.hook_name)
        quality = sae_quality(model, sae, held_out, progress=lambda fraction, message: report(0.95 + 0.05 * fraction, message))
        return TrainedSAE(
            sae, quality, tuple(curve), trainer.tokens, time.perf_counter() - started, corpus.name, corpus.origin,
            corpus.licence, model.info.name, model.info.weights_sha256,
        )  # fmt: skip

    # -- checkpoints -----------------------------------------------------------------------------------------------

    def _identity(self) -> dict:
        """The settings a checkpoint must share to be continued (n_tokens may grow; checkpoint is where, not what)."""
        return {k: v for k, v in self.settings().items() if k not in ("n_tokens", "checkpoint")}

    def _resume(self, settings: TopKSettings) -> tuple[TopKTrainer, int, list[TrainingPoint]]:
        folder = Path(self.checkpoint) if self.checkpoint else None
        if folder is None or not (folder / STATE_FILE).is_file():
            return TopKTrainer(settings), 0, []
        try:
            saved = json.loads((folder / SETTINGS_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise InputError(f"The checkpoint in {folder.name!r} has no readable settings; use an empty folder.") from None
        if saved.get("settings") != self._identity():
            raise InputError(
                f"The checkpoint in {folder.name!r} was trained with other settings; continue it with those, or "
                "choose another folder."
            )
        state = load_file(str(folder / STATE_FILE))
        curve = [TrainingPoint(int(t), float(f), float(d)) for t, f, d in saved.get("curve", [])]
        return TopKTrainer(settings, state=state), int(saved["next_context"]), curve

    def _save(self, trainer: TopKTrainer, next_context: int, curve: list[TrainingPoint]) -> None:
        folder = Path(self.checkpoint)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / (STATE_FILE + ".tmp")
        save_file({name: t.contiguous() for name, t in trainer.state_tensors().items()}, str(tmp))
        tmp.replace(folder / STATE_FILE)  # atomic: a crash mid-write leaves the last good state
        record = {
            "settings": self._identity(),
            "next_context": next_context,
            "curve": [[p.tokens, p.fvu, p.dead_fraction] for p in curve],
        }
        (folder / SETTINGS_FILE).write_text(json.dumps(record))
