"""The lean decode path against the bridge: the same logits (1e-4), the same greedy tokens, and hooks that see the
same activations at the same names and positions. The bridge is the reference (it equals Hugging Face generate)."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from interp.errors import HookError
from interp.hooks import count_hooks, intervene
from interp.lean import lean_model, lean_supports
from interp.tokens import tokenize

PROMPT = "The cat sat on the mat and then"
NAMES = ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_post", "blocks.1.hook_attn_out", "blocks.0.hook_mlp_out",
         "blocks.1.attn.hook_z"]  # fmt: skip


def run(model, ids, *, lean: bool, hooks=(), cache=None, positions=None):
    with intervene(model, list(hooks), lean=lean), torch.inference_mode():
        if lean:
            out = lean_model(model)(input_ids=ids, past_key_values=cache, position_ids=positions, use_cache=cache is not None)
            return out.logits
        return model.bridge(ids, past_key_values=cache, position_ids=positions)


def test_the_lean_model_shares_the_bridges_weights(tiny_llama):
    lean = lean_model(tiny_llama)
    bridge_tensors = {p.data_ptr() for p in tiny_llama.hf_model.parameters()}
    assert all(p.data_ptr() in bridge_tensors for p in lean.parameters())


def test_lean_logits_equal_the_bridges(tiny_llama):
    ids = torch.tensor([tokenize(tiny_llama, PROMPT)])
    torch.testing.assert_close(run(tiny_llama, ids, lean=True), run(tiny_llama, ids, lean=False), atol=1e-4, rtol=0)


def test_lean_greedy_decoding_with_a_cache_equals_the_bridges(tiny_llama):
    ids = torch.tensor([tokenize(tiny_llama, PROMPT)])
    tokens = {}
    for lean in (False, True):
        cache, step, out = DynamicCache(config=tiny_llama.hf_model.config), ids, []
        position = 0
        for _ in range(12):
            positions = torch.arange(position, position + step.shape[1])[None]
            logits = run(tiny_llama, step, lean=lean, cache=cache, positions=positions)
            position += step.shape[1]
            step = logits[:, -1:].argmax(-1)
            out.append(int(step))
        tokens[lean] = out
    assert tokens[True] == tokens[False]


@pytest.mark.parametrize("name", NAMES)
def test_a_hook_sees_the_same_activation_and_its_replacement_acts_the_same(tiny_llama, name):
    ids = torch.tensor([tokenize(tiny_llama, PROMPT)])
    seen = {}

    def capture_and_push(lean):
        def hook(activation, site):
            seen[lean] = (activation.detach().clone(), site.name, site.position_offset)
            return activation * 1.5

        return hook

    logits = {lean: run(tiny_llama, ids, lean=lean, hooks=[(name, capture_and_push(lean))]) for lean in (False, True)}
    torch.testing.assert_close(seen[True][0], seen[False][0], atol=1e-5, rtol=0)
    assert seen[True][1:] == seen[False][1:]
    torch.testing.assert_close(logits[True], logits[False], atol=1e-4, rtol=0)
    assert count_hooks(tiny_llama) == 0


def test_names_the_lean_path_lacks_are_refused_and_other_layouts_have_none(tiny_llama, tiny_gpt2):
    assert lean_supports(tiny_llama, NAMES)
    assert not lean_supports(tiny_llama, ["blocks.0.attn.hook_pattern"])
    with pytest.raises(HookError, match="lean decode path has no hook point"):
        with intervene(tiny_llama, [("blocks.0.attn.hook_pattern", lambda a, s: None)], lean=True):
            pass
    assert lean_model(tiny_gpt2) is None and not lean_supports(tiny_gpt2, [])


@pytest.mark.real_model
def test_smollm2_has_a_lean_path_with_the_bridges_logits(default_model):
    ids = torch.tensor([tokenize(default_model, "I think the weather today is")])
    assert lean_model(default_model) is not None
    torch.testing.assert_close(run(default_model, ids, lean=True), run(default_model, ids, lean=False), atol=1e-4, rtol=0)
