"""Feature attribution on the tiny Llama: the spliced run is the clean run, the attributions are the hook's gradient
read along each decoder direction (computed independently), and the verified ones are real ablations."""

from __future__ import annotations

import pytest
import torch

from features.attribution import feature_attribution, metric_with_latents_zeroed
from features.sae import SparseAutoencoder
from interp.hooks import intervene

HOOK = "blocks.1.hook_resid_pre"
PROMPT = "The river runs past the mill and the old"


@pytest.fixture(scope="module")
def sae(tiny_llama):
    d = tiny_llama.info.d_model
    g = torch.Generator().manual_seed(2)
    decoder = torch.randn(64, d, generator=g)
    encoder = torch.randn(64, d, generator=g)
    return SparseAutoencoder(encoder, torch.zeros(64), decoder / decoder.norm(dim=1, keepdim=True), torch.zeros(d), HOOK, k=6)


def test_attributions_are_the_hook_gradient_along_each_decoder_direction(tiny_llama, sae):
    ids = tiny_llama.tokenizer(PROMPT, return_tensors="pt").input_ids
    target_id = 17
    kept = {}

    def keep(activation, site):
        kept["x"] = activation
        return activation

    with intervene(tiny_llama, [(HOOK, keep)]), torch.enable_grad():
        logits = tiny_llama.bridge(ids)
        clean = torch.log_softmax(logits[0, -1].float(), dim=-1)[target_id]
        (gradient,) = torch.autograd.grad(clean, [kept["x"]])
    clean = clean.detach()
    code = sae.encode(kept["x"][0].detach())
    code[0] = 0
    expected = (code * (gradient[0] @ sae.decoder_weight.T)).sum(dim=0)  # Σ_pos z_i · (∂m/∂x · W_dec[i])

    found = feature_attribution(tiny_llama, sae, PROMPT, target_id, top=64, verify=3)
    assert found.log_prob == pytest.approx(float(clean), abs=1e-5)  # the error term keeps the run exact
    active = torch.nonzero(code.sum(dim=0) > 0).flatten().tolist()
    assert sorted(e.latent for e in found.effects) == sorted(active)
    for effect in found.effects:
        assert effect.attribution == pytest.approx(float(expected[effect.latent]), rel=1e-3, abs=1e-6)
    assert [abs(e.attribution) for e in found.effects] == sorted((abs(e.attribution) for e in found.effects), reverse=True)
    for effect in found.effects[:3]:
        real = float(clean) - metric_with_latents_zeroed(tiny_llama, sae, ids, target_id, [effect.latent])
        assert effect.ablated_drop == pytest.approx(real, abs=1e-6)
    assert all(e.ablated_drop is None for e in found.effects[3:])


def test_zeroing_no_latent_changes_nothing_and_bad_targets_are_explained(tiny_llama, sae):
    from interp.errors import InputError

    ids = tiny_llama.tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        clean = torch.log_softmax(tiny_llama.bridge(ids)[0, -1].float(), dim=-1)[5]
    assert metric_with_latents_zeroed(tiny_llama, sae, ids, 5, []) == pytest.approx(float(clean), abs=1e-5)
    with pytest.raises(InputError):
        feature_attribution(tiny_llama, sae, PROMPT, " two words")
