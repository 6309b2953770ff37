"""The SAE shipped for SmolLM2-135M-Instruct, on the real model: it meets the issue's quality targets on text it was
not trained on, its card tells the truth, and its feature attribution picks features that really matter."""

from __future__ import annotations

import random

import pytest
import torch

from features.activations import hook_activations, token_stream
from features.attribution import feature_attribution, metric_with_latents_zeroed
from features.corpus import load_corpus
from features.dashboard import feature_dashboard, load_index
from features.quality import sae_quality
from features.shipped import SHIPPED, shipped_sae
from interp.tokens import tokenize

# prompts whose next token the model predicts confidently, each with that token
PREDICTIONS = [
    ("The capital of France is", " Paris"),
    ("def add(a, b):\n    return a", " +"),
    ("One, two, three, four,", " five"),
    ("The opposite of hot is", " cold"),
    ("import numpy as", " np"),
    ("Monday, Tuesday,", " Wednesday"),
]


@pytest.fixture(scope="module")
def shipped(default_model):
    return shipped_sae(default_model)


def test_the_shipped_sae_recovers_the_loss_on_text_it_never_saw(default_model, shipped):
    # pydoc's help topics: CPython's own text, not the documentation sources the SAE was trained on
    stream = token_stream(default_model, load_corpus("pydoc-topics").documents, context_tokens=128)
    held_out = type(stream)(stream.contexts[:: max(1, stream.contexts.shape[0] // 12)][:12].clone(), "pydoc-topics")
    quality = sae_quality(default_model, shipped.sae, held_out)
    assert quality.ce_loss_recovered >= 0.75, quality.describe()
    assert quality.fvu < 0.5 and quality.l0 == pytest.approx(shipped.sae.k, abs=0.01)
    metrics = shipped.card["metrics"]
    assert metrics["ce_loss_recovered"] >= 0.75 and metrics["dead_fraction"] <= 0.10  # the targets, as trained


def test_at_most_a_tenth_of_the_shipped_features_never_fire_on_the_index(shipped):
    index = load_index(SHIPPED, shipped.sae)
    assert index is not None and index.n_tokens >= 50_000
    assert float((index.firing_counts == 0).float().mean()) <= 0.10


def test_a_dashboard_of_the_shipped_sae_shows_real_contexts(default_model, shipped):
    index = load_index(SHIPPED, shipped.sae)
    latent = int(index.firing_counts.argsort(descending=True)[50])
    board = feature_dashboard(default_model, shipped.sae, index, latent)
    assert len(board.examples) == 8 and board.density > 0
    assert all(e.activations[e.highlight] == pytest.approx(e.activation, rel=0.02) for e in board.examples)


def test_ablating_the_top_attributed_features_moves_the_prediction_more_than_random_ones(default_model, shipped):
    rng = random.Random(0)
    top_drops, random_drops = [], []
    for prompt, answer in PREDICTIONS:
        found = feature_attribution(default_model, shipped.sae, prompt, answer, top=5, verify=0)
        top = [e.latent for e in found.effects if e.attribution > 0][:3]
        ids = torch.tensor([tokenize(default_model, prompt)])
        code = shipped.sae.encode(hook_activations(default_model, ids, shipped.sae.hook_name)[0, 1:])
        summed = code.sum(dim=0)
        active = [i for i in torch.nonzero(summed > 0).flatten().tolist() if i not in top]
        # random active features of about the same total activation: for each top one, the nearest-activation other
        matched = []
        for latent in top:
            candidates = sorted(active, key=lambda i: abs(float(summed[i] - summed[latent])))[:5]
            choice = rng.choice(candidates)
            active.remove(choice)
            matched.append(choice)
        clean = found.log_prob
        top_drops.append(clean - metric_with_latents_zeroed(default_model, shipped.sae, ids, found.target_id, top))
        random_drops.append(clean - metric_with_latents_zeroed(default_model, shipped.sae, ids, found.target_id, matched))
    assert sum(top_drops) / len(top_drops) > 2 * sum(random_drops) / len(random_drops) + 0.05, (top_drops, random_drops)
    assert sum(t > r for t, r in zip(top_drops, random_drops, strict=True)) >= len(PREDICTIONS) - 1
