"""Small examples of the SAE run kinds, for the tiny fixtures: a random TopK SAE on layer 1 with its index."""

from __future__ import annotations

import functools
import tempfile

import torch

from features.activations import token_stream
from features.dashboard import build_feature_index, save_index
from features.files import save_sae
from features.runs import (
    FeatureAttributionRun,
    FeatureDashboardRun,
    FeatureSteeringRun,
    FeatureVsVectorRun,
    PromptFeaturesRun,
    SAEQualityRun,
    SAETraining,
)
from features.sae import SparseAutoencoder
from interp import LoadedModel
from interp.runs import RunSpec

TEXT = ["The river runs past the mill and the old bridge, then under the railway to the sea."] * 4


@functools.cache
def tiny_sae_folder(model: LoadedModel) -> str:
    """A random TopK SAE for ``model``'s layer 1 (fp32, so replays compare exactly), written once per session."""
    d = model.info.d_model
    g = torch.Generator().manual_seed(0)
    decoder = torch.randn(32, d, generator=g)
    sae = SparseAutoencoder(torch.randn(32, d, generator=g), torch.zeros(32), decoder / decoder.norm(dim=1, keepdim=True),
                            torch.zeros(d), "blocks.1.hook_resid_pre", k=4)  # fmt: skip
    folder = tempfile.mkdtemp(prefix="tiny-sae-")
    save_sae(sae, folder, {"model": model.info.name}, dtype=torch.float32)
    save_index(build_feature_index(model, sae, token_stream(model, TEXT, context_tokens=16)), folder)
    return folder


def examples(model: LoadedModel) -> list[RunSpec]:
    folder = tiny_sae_folder(model)
    return [
        SAETraining(
            hook_name="blocks.1.hook_resid_pre",
            d_sae=32,
            k=4,
            corpus="pydoc-topics",
            n_tokens=600,
            context_tokens=16,
            batch_contexts=8,
            learning_rate=1e-3,
            evaluation_contexts=4,
        ),
        PromptFeaturesRun(sae_folder=folder, prompt="The river runs past"),
        FeatureDashboardRun(sae_folder=folder, latent=3, n_examples=3),
        FeatureAttributionRun(sae_folder=folder, prompt="The river runs past the", target=7, top=4, verify=2),
        FeatureSteeringRun(
            sae_folder=folder, latent=2, mode="clamp", value=3.0, prompts=("I love", "The store"), n_samples=1, max_new_tokens=4
        ),
        SAEQualityRun(sae_folder=folder, n_contexts=2, context_tokens=16),
        FeatureVsVectorRun(sae_folder=folder, latent=1, added_norms=(1.0,), prompts=("I love",), n_samples=1, max_new_tokens=4),
    ]
