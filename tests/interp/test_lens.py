"""Logit lens: its last layer is the model's own output; targets are tracked per layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import InputError
from interp.activations import decode_residual, record
from interp.forward import run_logits
from interp.lens import logit_lens, residual_hook_names
from interp.tokens import as_batch, tokenize


def test_last_layer_of_the_lens_is_the_models_output(tiny_model):
    ids = as_batch(tokenize(tiny_model, "The Eiffel Tower is in the city of"), tiny_model)
    names = residual_hook_names(tiny_model)
    residuals = record(tiny_model, ids, names).stack(names)[:, 0]
    lens_logits = decode_residual(tiny_model, residuals)
    torch.testing.assert_close(lens_logits[-1], run_logits(tiny_model, ids)[0], atol=1e-5, rtol=0)


def test_lens_result_shapes_and_top_tokens(tiny_llama):
    prompt = "The Eiffel Tower is in the city of"
    lens = logit_lens(tiny_llama, prompt, k=3)
    n = len(tokenize(tiny_llama, prompt))
    assert lens.layer_labels == ("embed", "L0", "L1")
    assert lens.top_probs.shape == (3, n, 3) and lens.top_tokens.shape == (3, n, 3)
    assert np.all(np.diff(lens.top_probs, axis=-1) <= 0)
    final = torch.softmax(run_logits(tiny_llama, as_batch(tokenize(tiny_llama, prompt), tiny_llama))[0, -1], -1)
    assert lens.top_ids[-1, -1, 0] == int(final.argmax())
    assert lens.top_probs[-1, -1, 0] == pytest.approx(float(final.max()), abs=1e-6)


def test_target_probability_and_rank_follow_the_token(tiny_llama):
    lens = logit_lens(tiny_llama, "When Mary and John went to the store, John gave a drink to", target=" Mary")
    assert lens.target_probs.shape == lens.target_ranks.shape == (3, len(lens.tokens))
    top1 = lens.top_ids[..., 0] == lens.target_id
    assert np.all((lens.target_ranks == 1) == top1)
    assert np.all(lens.target_ranks >= 1)
    frame = lens.to_frame()
    assert len(frame) == 3 * len(lens.tokens) and "target_rank" in frame


def test_multi_token_target_is_explained(tiny_llama):
    with pytest.raises(InputError, match="tokens for this model"):
        logit_lens(tiny_llama, "hello", target=" Parisianistically")


def test_default_model_lens_rises_to_paris(default_model):
    lens = logit_lens(default_model, "The Eiffel Tower is in the city of", target=" Paris")
    final = lens.target_probs[-1, -1]
    assert lens.target_ranks[-1, -1] == 1 and final > 0.3
    assert lens.target_probs[1, -1] < final  # the first block's reading is far less sure
