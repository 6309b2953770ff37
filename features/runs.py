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
import threading
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

from features.activations import stream_activations, token_stream
from features.attribution import FeatureAttribution, feature_attribution
from features.corpus import CORPORA, load_corpus
from features.dashboard import FeatureDashboard, PromptFeatures, feature_dashboard, load_index, prompt_features
from features.files import SAEFolder
from features.quality import SAEQuality, sae_quality
from features.sae import SparseAutoencoder, hook_layer
from features.steer import FeatureVsVector, compare_with_vector, evaluate_clamp, feature_vector
from features.train import TopKSettings, TopKTrainer
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, check_choice, check_count, check_finite, default_of
from steering import BUILT_IN, built_in, mean_difference
from steering.runs import SCORER_NAMES, behaviour_scorer, check_prompts
from steering.sweep import Evaluation, evaluate

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
    mirrors = (TopKSettings,)

    hook_name: str = "blocks.9.hook_resid_pre"
    d_sae: int = 4096
    k: int = 32
    corpus: str = "python-docs"
    n_tokens: int = 2_000_000
    context_tokens: int = 128
    batch_contexts: int = 16
    learning_rate: float = default_of(TopKSettings, "learning_rate")  # 0: sparsify's 2e-4 / sqrt(d_sae / 2**14)
    dead_after_tokens: int = default_of(TopKSettings, "dead_after_tokens")
    evaluation_contexts: int = 64  # held out: the last contexts of the text, never trained on
    seed: int = default_of(TopKSettings, "seed")
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


# -- the Features page's runs: each names its SAE by folder, so a record says which SAE it used -------------------


_SAES: dict[tuple[str, float], SAEFolder] = {}
_SAES_LOCK = threading.Lock()  # Streamlit sessions are threads: one read per SAE version, not one per session


def sae_at(folder: str, model: LoadedModel) -> SAEFolder:
    """The SAE in ``folder``, read once per version of its weights file (shared by every session)."""
    from features.files import load_sae

    path = Path(folder).expanduser()
    weights = next((path / name for name in ("sae.safetensors", "sae_weights.safetensors") if (path / name).is_file()), None)
    key = (str(path.resolve()), weights.stat().st_mtime if weights is not None else 0.0)
    with _SAES_LOCK:
        if key not in _SAES:
            _SAES[key] = load_sae(path)
        loaded = _SAES[key]
    if loaded.sae.d_in != model.info.d_model:  # checked on every use: one SAE, several models in one app
        load_sae(path, d_model=model.info.d_model)  # raises the loader's own message
    made_for = loaded.card.get("weights_sha256")
    if made_for and made_for != model.info.weights_sha256:
        raise InputError(
            f"This SAE was trained on {loaded.card.get('model', 'another model')}, whose weights differ from the loaded "
            "model's; its features would not mean the same here. Train one for this model."
        )
    return loaded


def _check_folder(folder: str) -> None:
    if not isinstance(folder, str) or not folder.strip():
        raise InputError("Choose an SAE: the shipped one, or the folder of one on this machine.")


@dataclasses.dataclass(frozen=True)
class PromptFeaturesRun(RunSpec):
    """The strongest features on each token of ``prompt``."""

    kind = "sae_prompt_features"
    title = "Features on a prompt"
    tolerance = 1e-4
    mirrors = (prompt_features,)

    sae_folder: str = ""
    prompt: str = "import numpy as np"
    per_token: int = default_of(prompt_features, "per_token")

    def __post_init__(self) -> None:
        _check_folder(self.sae_folder)
        check_count("features per token", self.per_token, low=1, high=50)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> PromptFeatures:
        return prompt_features(model, sae_at(self.sae_folder, model).sae, self.prompt, per_token=self.per_token)


@dataclasses.dataclass(frozen=True)
class FeatureDashboardRun(RunSpec):
    """One feature's dashboard: top contexts, histogram, density, logit effects (from the index beside the SAE)."""

    kind = "sae_feature_dashboard"
    title = "Feature dashboard"
    tolerance = 1e-3
    mirrors = (feature_dashboard,)

    sae_folder: str = ""
    latent: int = 0
    n_examples: int = default_of(feature_dashboard, "n_examples")

    def __post_init__(self) -> None:
        _check_folder(self.sae_folder)
        check_count("feature", self.latent, low=0)
        check_count("examples", self.n_examples, low=1, high=100)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> FeatureDashboard:
        folder = sae_at(self.sae_folder, model)
        index = load_index(folder.folder, folder.sae)
        if index is None:
            raise InputError(
                "This SAE has no dashboards index yet; build it with: python -m features index FOLDER (a few minutes)."
            )
        return feature_dashboard(model, folder.sae, index, self.latent, n_examples=self.n_examples)


@dataclasses.dataclass(frozen=True)
class FeatureAttributionRun(RunSpec):
    """Which features drive ``target`` as the next token, the strongest checked by real ablation."""

    kind = "sae_feature_attribution"
    title = "Feature attribution"
    tolerance = 1e-3
    mirrors = (feature_attribution,)

    sae_folder: str = ""
    prompt: str = "The capital of France is"
    target: str | int = " Paris"  # the next token, as text (one token) or its id
    top: int = default_of(feature_attribution, "top")
    verify: int = default_of(feature_attribution, "verify")

    def __post_init__(self) -> None:
        _check_folder(self.sae_folder)
        check_count("features shown", self.top, low=1, high=100)
        check_count("features ablated", self.verify, low=0, high=self.top)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> FeatureAttribution:
        sae = sae_at(self.sae_folder, model).sae
        return feature_attribution(model, sae, self.prompt, self.target, top=self.top, verify=self.verify)


@dataclasses.dataclass(frozen=True)
class FeatureSteeringRun(RunSpec):
    """Steer with one feature (add its direction, or clamp its activation): behaviour and damage vs unsteered."""

    kind = "sae_feature_steering"
    title = "Feature steering"
    tolerance = 1e-3
    mirrors = (evaluate,)

    sae_folder: str = ""
    latent: int = 0
    mode: str = "add"  # "add": value × the unit direction; "clamp": the feature's activation set to value
    value: float = 8.0
    scorer: str = "sentiment"
    prompts: tuple[str, ...] = default_of(evaluate, "prompts")
    n_samples: int = default_of(evaluate, "n_samples")
    max_new_tokens: int = default_of(evaluate, "max_new_tokens")
    seed: int = default_of(evaluate, "seed")

    def __post_init__(self) -> None:
        _check_folder(self.sae_folder)
        check_count("feature", self.latent, low=0)
        check_choice("steering mode", self.mode, ("add", "clamp"))
        check_finite("value", self.value)
        check_choice("scorer", self.scorer, SCORER_NAMES)
        check_count("samples per prompt", self.n_samples, low=1, high=16)
        check_count("new tokens", self.max_new_tokens, low=1, high=200)
        object.__setattr__(self, "prompts", check_prompts(self.prompts))

    def run(self, model: LoadedModel, progress: Progress | None = None) -> Evaluation:
        folder = sae_at(self.sae_folder, model)
        scorer = behaviour_scorer(model, self.scorer)
        options = dict(prompts=self.prompts, n_samples=self.n_samples, max_new_tokens=self.max_new_tokens, seed=self.seed)
        if self.mode == "clamp":
            return evaluate_clamp(model, folder.sae, self.latent, self.value, scorer, **options)
        vector = feature_vector(model, folder.sae, self.latent)
        return evaluate(model, vector, folder.sae.layer, self.value, scorer, **options)


@dataclasses.dataclass(frozen=True)
class SAEQualityRun(RunSpec):
    """An SAE's quality figures measured here (for an SAE whose folder has no card), on ``corpus``'s contexts."""

    kind = "sae_quality"
    title = "SAE quality"
    tolerance = 1e-4
    mirrors = (token_stream,)

    sae_folder: str = ""
    corpus: str = "pydoc-topics"
    n_contexts: int = 32
    context_tokens: int = default_of(token_stream, "context_tokens")

    def __post_init__(self) -> None:
        _check_folder(self.sae_folder)
        check_choice("text", self.corpus, CORPORA)
        check_count("contexts", self.n_contexts, low=1, high=10_000)
        check_count("context length", self.context_tokens, low=8, high=4096)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> SAEQuality:
        stream = token_stream(model, load_corpus(self.corpus).documents, context_tokens=self.context_tokens, source=self.corpus)
        step = max(1, stream.contexts.shape[0] // self.n_contexts)  # spread over the text
        chosen = dataclasses.replace(stream, contexts=stream.contexts[::step][: self.n_contexts].clone())
        return sae_quality(model, sae_at(self.sae_folder, model).sae, chosen, progress=progress)


@dataclasses.dataclass(frozen=True)
class FeatureVsVectorRun(RunSpec):
    """A feature and the mean-difference vector of built-in pairs, both at unit norm, swept over the same norms."""

    kind = "sae_feature_vs_vector"
    title = "Feature vs mean difference"
    tolerance = 1e-3
    mirrors = (compare_with_vector,)

    sae_folder: str = ""
    latent: int = 0
    pairs: str = "sentiment"
    scorer: str = "sentiment"
    added_norms: tuple[float, ...] = default_of(compare_with_vector, "added_norms")
    prompts: tuple[str, ...] = default_of(compare_with_vector, "prompts")
    n_samples: int = default_of(compare_with_vector, "n_samples")
    max_new_tokens: int = default_of(compare_with_vector, "max_new_tokens")
    seed: int = default_of(compare_with_vector, "seed")

    def __post_init__(self) -> None:
        _check_folder(self.sae_folder)
        check_count("feature", self.latent, low=0)
        check_choice("contrast pairs", self.pairs, tuple(BUILT_IN))
        check_choice("scorer", self.scorer, SCORER_NAMES)
        norms = tuple(float(n) for n in self.added_norms)
        if not norms or len(norms) > 8:
            raise InputError("Give between 1 and 8 added norms.")
        for norm in norms:
            check_finite("added norm", norm, low=0.0)
        object.__setattr__(self, "added_norms", norms)
        object.__setattr__(self, "prompts", check_prompts(self.prompts))
        check_count("samples per prompt", self.n_samples, low=1, high=16)
        check_count("new tokens", self.max_new_tokens, low=1, high=200)

    def run(self, model: LoadedModel, progress: Progress | None = None) -> FeatureVsVector:
        sae = sae_at(self.sae_folder, model).sae
        vector = mean_difference(model, built_in(self.pairs), layers=[sae.layer], position="mean")
        return compare_with_vector(
            model, sae, self.latent, vector, behaviour_scorer(model, self.scorer), added_norms=self.added_norms,
            prompts=self.prompts, n_samples=self.n_samples, max_new_tokens=self.max_new_tokens, seed=self.seed,
        )  # fmt: skip
