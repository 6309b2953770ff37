"""Activations for SAEs and the SAE quality figures, on the tiny Llama, against Hugging Face and constructed SAEs."""

from __future__ import annotations

import pytest
import torch

from features.activations import SKIPPED_POSITIONS, hook_activations, stream_activations, token_stream
from features.quality import sae_quality, splice_hook
from features.sae import SparseAutoencoder
from interp.errors import InputError
from interp.hooks import intervene

TEXT = [
    "The river runs past the mill and the old bridge, then under the railway to the sea.",
    "A function returns a value; a generator yields many values, one at a time, when asked.",
    "She planted beans in spring and picked them in August, when the evenings were long.",
] * 6


def identity_sae(d: int, hook_name: str) -> SparseAutoencoder:
    """A ReLU SAE that reconstructs exactly: latents relu(x) and relu(−x), decoded as their difference."""
    eye = torch.eye(d)
    return SparseAutoencoder(
        encoder_weight=torch.cat([eye, -eye]),
        encoder_bias=torch.zeros(2 * d),
        decoder_weight=torch.cat([eye, -eye]),
        decoder_bias=torch.zeros(d),
        hook_name=hook_name,
        activation="relu",
        subtract_decoder_bias=False,
    )


@pytest.mark.parametrize("layer", [0, 1])
def test_hook_activations_are_hugging_faces_hidden_states(tiny_llama, layer):
    stream = token_stream(tiny_llama, TEXT, context_tokens=16)
    ids = stream.contexts[:3]
    ours = hook_activations(tiny_llama, ids, f"blocks.{layer}.hook_resid_pre")
    with torch.inference_mode():
        hf = tiny_llama.hf_model(ids, output_hidden_states=True).hidden_states[layer]
    assert ours.shape == hf.shape
    torch.testing.assert_close(ours, hf.float(), atol=1e-5, rtol=1e-5)


def test_streamed_batches_skip_the_sink_and_cover_every_context_once(tiny_llama):
    stream = token_stream(tiny_llama, TEXT, context_tokens=16)
    batches = list(stream_activations(tiny_llama, stream, "blocks.1.hook_resid_post", batch_contexts=4))
    assert [end for end, _ in batches][-1] == stream.contexts.shape[0]
    assert sum(acts.shape[0] for _, acts in batches) == stream.n_tokens == stream.contexts.shape[0] * (16 - SKIPPED_POSITIONS)
    resumed = list(stream_activations(tiny_llama, stream, "blocks.1.hook_resid_post", batch_contexts=4, start_context=4))
    torch.testing.assert_close(resumed[0][1], batches[1][1])


def test_splicing_a_perfect_sae_leaves_the_logits_unchanged(tiny_llama):
    d = tiny_llama.info.d_model
    sae = identity_sae(d, "blocks.1.hook_resid_post")
    ids = token_stream(tiny_llama, TEXT, context_tokens=16).contexts[:2]
    with torch.inference_mode():
        clean = tiny_llama.bridge(ids)
    with intervene(tiny_llama, [(sae.hook_name, splice_hook(sae))]), torch.inference_mode():
        spliced = tiny_llama.bridge(ids)
    torch.testing.assert_close(spliced, clean, atol=1e-5, rtol=1e-5)


def test_a_perfect_sae_recovers_all_the_loss_and_a_useless_one_none(tiny_llama):
    d = tiny_llama.info.d_model
    stream = token_stream(tiny_llama, TEXT, context_tokens=16)
    perfect = sae_quality(tiny_llama, identity_sae(d, "blocks.1.hook_resid_post"), stream)
    assert perfect.fvu == pytest.approx(0.0, abs=1e-6)
    assert perfect.spliced_loss == pytest.approx(perfect.clean_loss, abs=1e-5)
    assert perfect.ce_loss_recovered == pytest.approx(1.0, abs=1e-4)
    assert abs(perfect.zero_ablated_loss - perfect.clean_loss) > 0.1  # the ratio is defined (an untrained model: either sign)
    assert perfect.l0 == pytest.approx(float(d), abs=0.5)  # one of relu(x), relu(−x) per dimension (x ≠ 0)
    # an SAE that always outputs zero is the zero ablation: nothing recovered, FVU of exactly the activation's
    # energy over its variance (≥ 1)
    zeros = torch.zeros(2 * d, d)
    useless = SparseAutoencoder(
        torch.zeros(2 * d, d), torch.zeros(2 * d), zeros, torch.zeros(d), "blocks.1.hook_resid_post", activation="relu"
    )
    worst = sae_quality(tiny_llama, useless, stream)
    assert worst.ce_loss_recovered == pytest.approx(0.0, abs=1e-6)
    assert worst.dead_fraction == 1.0 and worst.l0 == 0.0 and worst.fvu >= 1.0


def test_too_little_text_says_give_more(tiny_llama):
    with pytest.raises(InputError, match="give more text"):
        token_stream(tiny_llama, ["short"], context_tokens=128)
    with pytest.raises(InputError, match="at least 2 tokens"):
        token_stream(tiny_llama, TEXT, context_tokens=1)
