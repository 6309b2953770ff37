"""Feature dashboards on the tiny Llama against brute force: the index's top contexts are the strongest activations
of all tokens, logit effects are the HF weights' product, and a prompt's features are its own encoding."""

from __future__ import annotations

import pytest
import torch

from features.activations import SKIPPED_POSITIONS, hook_activations, token_stream
from features.dashboard import (
    build_feature_index,
    feature_dashboard,
    features_promoting,
    load_index,
    logit_effects,
    prompt_features,
    save_index,
)
from features.files import save_sae
from features.sae import SparseAutoencoder
from interp.errors import InputError

HOOK = "blocks.1.hook_resid_pre"
TEXT = ["The river runs past the mill and the old bridge, then under the railway to the sea."] * 3 + [
    "A function returns a value; a generator yields many values, one at a time, when asked.",
    "She planted beans in spring and picked them in August, when the evenings were long.",
] * 4


def topk_sae(d: int, width: int = 48, k: int = 3, seed: int = 0) -> SparseAutoencoder:
    g = torch.Generator().manual_seed(seed)
    decoder = torch.randn(width, d, generator=g)
    encoder = torch.randn(width, d, generator=g)
    return SparseAutoencoder(encoder, torch.zeros(width), decoder / decoder.norm(dim=1, keepdim=True), torch.zeros(d), HOOK, k=k)


@pytest.fixture(scope="module")
def setting(tiny_llama):
    sae = topk_sae(tiny_llama.info.d_model)
    stream = token_stream(tiny_llama, TEXT, context_tokens=16)
    return sae, stream, build_feature_index(tiny_llama, sae, stream, top_m=5, batch_contexts=3)


def test_the_index_holds_each_latents_strongest_tokens_over_all_the_text(tiny_llama, setting):
    sae, stream, index = setting
    code = sae.encode(hook_activations(tiny_llama, stream.contexts, HOOK))  # [ctx, pos, d_sae], one batch
    code[:, :SKIPPED_POSITIONS] = 0
    flat = code.reshape(-1, sae.d_sae)
    for latent in range(sae.d_sae):
        expected = flat[:, latent].topk(5).values
        torch.testing.assert_close(index.top_values[latent], expected.clamp(min=0))
        for j in range(5):  # the stored place holds that activation
            if index.top_values[latent, j] > 0:
                c, p = int(index.top_contexts[latent, j]), int(index.top_positions[latent, j])
                assert float(code[c, p, latent]) == pytest.approx(float(index.top_values[latent, j]), rel=1e-5)
    assert torch.equal(index.firing_counts, (flat > 0).sum(dim=0))
    assert int(index.histogram.sum()) == int((flat > 0).sum())
    assert index.n_tokens == stream.n_tokens


def test_the_index_survives_its_file(tmp_path, tiny_llama, setting):
    sae, _, index = setting
    save_sae(sae, tmp_path, {})
    save_index(index, tmp_path)
    again = load_index(tmp_path, sae)
    torch.testing.assert_close(again.top_values, index.top_values, atol=1e-2, rtol=1e-3)  # stored in fp16
    assert torch.equal(again.top_contexts, index.top_contexts) and torch.equal(again.contexts, index.contexts)
    assert load_index(tmp_path / "nowhere", sae) is None


def test_logit_effects_are_the_direction_through_hfs_norm_weight_and_lm_head(tiny_llama, setting):
    sae = setting[0]
    hf = tiny_llama.hf_model
    effect = hf.lm_head.weight.detach().float() @ (sae.decoder_weight[7] * hf.model.norm.weight.detach().float())
    promoted, suppressed = logit_effects(tiny_llama, sae, 7, n=4)
    assert [e.token_id for e in promoted] == effect.topk(4).indices.tolist()
    assert [e.token_id for e in suppressed] == (-effect).topk(4).indices.tolist()
    assert promoted[0].logit == pytest.approx(float(effect.max()), rel=1e-5)
    token = promoted[0].token_id
    ranked = features_promoting(tiny_llama, sae, token, n=sae.d_sae)
    reference = sae.decoder_weight @ (hf.lm_head.weight[token].detach().float() * hf.model.norm.weight.detach().float())
    assert [latent for latent, _ in ranked] == reference.topk(sae.d_sae).indices.tolist()


def test_a_dashboard_shows_the_top_contexts_with_the_token_highlighted(tiny_llama, setting):
    sae, _, index = setting
    latent = int(index.firing_counts.argmax())
    board = feature_dashboard(tiny_llama, sae, index, latent, window=4, n_examples=3)
    assert len(board.examples) == 3 and board.density == pytest.approx(float(index.firing_counts[latent]) / index.n_tokens)
    for j, example in enumerate(board.examples):
        assert example.activations[example.highlight] == pytest.approx(example.activation, rel=1e-4)
        assert example.activation == pytest.approx(float(index.top_values[latent, j]), rel=1e-4)
    top = board.examples[0]  # the strongest activation of all: nothing in its window is stronger
    assert max(top.activations) <= top.activation + 1e-4
    assert board.label and len(board.promoted) == 10
    with pytest.raises(InputError, match="does not exist"):
        feature_dashboard(tiny_llama, sae, index, sae.d_sae)


def test_a_prompts_features_are_its_own_encoding(tiny_llama, setting):
    sae = setting[0]
    found = prompt_features(tiny_llama, sae, "The river runs past the mill", per_token=3)
    ids = tiny_llama.tokenizer("The river runs past the mill", return_tensors="pt").input_ids
    code = sae.encode(hook_activations(tiny_llama, ids, HOOK)[0])
    assert len(found.tokens) == ids.shape[1] and found.top[0] == ()  # the sink is not encoded
    for position in range(1, ids.shape[1]):
        values, latents = code[position].topk(3)
        assert [latent for latent, _ in found.top[position]] == latents[values > 0].tolist()
    with pytest.raises(InputError):
        prompt_features(tiny_llama, sae, "")
