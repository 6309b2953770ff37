"""Feature steering on the tiny Llama: a clamp sets the feature where it fires, a feature's vector is a steering
vector like any other, and a mean-difference vector equal to the feature's direction steers identically."""

from __future__ import annotations

import pytest
import torch

from features.sae import SparseAutoencoder
from features.steer import clamp_hook, compare_with_vector, evaluate_clamp, feature_vector
from interp.errors import InputError
from interp.hooks import intervene
from steering import SteeringVector
from steering.scores import Scorer, topic_rate

HOOK = "blocks.1.hook_resid_pre"
PROMPTS = ("The river runs", "A function returns")


def orthogonal_relu_sae(d: int, seed: int = 0) -> SparseAutoencoder:
    """Latents relu(q_i·x) and relu(−q_i·x) for an orthonormal basis q: features that do not interfere."""
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    basis = torch.cat([q.T, -q.T])
    return SparseAutoencoder(
        basis, torch.zeros(2 * d), basis, torch.zeros(d), HOOK, activation="relu", subtract_decoder_bias=False
    )


def recorded(model, ids, hooks):
    kept = {}

    def keep(activation, site):
        kept["x"] = activation.detach().clone()

    with intervene(model, [*hooks, (HOOK, keep)]), torch.no_grad():
        model.bridge(ids)
    return kept["x"][0]


def test_a_clamp_sets_the_feature_where_it_fires_and_leaves_the_others(tiny_llama):
    sae = orthogonal_relu_sae(tiny_llama.info.d_model)
    ids = tiny_llama.tokenizer("The river runs past the mill and the old bridge", return_tensors="pt").input_ids
    before = sae.encode(recorded(tiny_llama, ids, []))
    latent = int(before[1:].gt(0).sum(dim=0).argmax())
    for value in (0.0, 7.5):
        after = sae.encode(recorded(tiny_llama, ids, [(HOOK, clamp_hook(sae, latent, value))]))
        fired = before[1:, latent] > 0
        torch.testing.assert_close(after[1:, latent][fired], torch.full((int(fired.sum()),), value), atol=1e-4, rtol=0)
        others = [i for i in range(sae.d_sae) if i not in (latent, (latent + sae.d_sae // 2) % sae.d_sae)]
        torch.testing.assert_close(after[1:, others], before[1:, others], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(after[0], before[0])  # the sink is left alone
    with pytest.raises(InputError):
        clamp_hook(sae, latent, float("nan"))


def test_a_features_vector_is_its_unit_direction_at_the_hook(tiny_llama):
    sae = orthogonal_relu_sae(tiny_llama.info.d_model)
    vector = feature_vector(tiny_llama, sae, 3, label="river")
    assert vector.layers == (1,) and vector.hook_point == "resid_pre" and vector.method == "sae_feature"
    torch.testing.assert_close(vector.direction(1), sae.decoder_weight[3])
    assert "river" in vector.source
    vector.check_for(tiny_llama)


def test_a_mean_difference_equal_to_the_feature_steers_identically(tiny_llama):
    sae = orthogonal_relu_sae(tiny_llama.info.d_model)
    rows = torch.stack([torch.randn(tiny_llama.info.d_model), 5 * sae.decoder_weight[3]])  # layer 1: 5 × the feature
    same = SteeringVector(layers=(0, 1), directions=rows, model_name=tiny_llama.info.name, d_model=tiny_llama.info.d_model)
    scorer = Scorer("the-rate", "share of words", lambda texts: topic_rate(texts, frozenset({"the", "a"})))
    result = compare_with_vector(
        tiny_llama, sae, 3, same, scorer, added_norms=(2.0, 8.0), prompts=PROMPTS, n_samples=1, max_new_tokens=6
    )
    assert result.cosine == pytest.approx(1.0, abs=1e-6)
    assert [c.behaviour for c in result.feature.cells] == [c.behaviour for c in result.vector.cells]
    assert [c.texts for c in result.feature.cells] == [c.texts for c in result.vector.cells]
    assert [c.perplexity_ratio for c in result.feature.cells] == pytest.approx([c.perplexity_ratio for c in result.vector.cells])
    clamp = evaluate_clamp(tiny_llama, sae, 3, 0.0, scorer, prompts=PROMPTS, n_samples=1, max_new_tokens=6)
    assert len(clamp.steered.texts) == len(PROMPTS) and clamp.coefficient == 0.0
