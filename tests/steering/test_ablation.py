"""Directional ablation: hooks vs orthogonalised weights (the parity proof), the residual left without the direction,
the engine vs the serial path, refusal directions by hand, and the messages for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interp import load_model
from interp.activations import record
from interp.errors import InputError
from interp.forward import run_logits
from interp.generation import generate_batch, generate_batch_serial
from interp.hooks import count_hooks, hook_point_names
from interp.tokens import as_batch, tokenize
from steering.ablation import (
    HARMFUL_INSTRUCTIONS,
    HARMLESS_INSTRUCTIONS,
    ablate,
    ablation_hooks,
    orthogonalised_weights,
    refusal_direction,
    save_orthogonalised,
)

PROMPTS = ["When Mary and John went to the store, John gave a drink to", "The Eiffel Tower is in the city of"]


def a_direction(model, seed: int = 3) -> torch.Tensor:
    """A random direction, deliberately not unit length (the functions normalise it)."""
    return 5.0 * torch.randn(model.info.d_model, generator=torch.Generator().manual_seed(seed))


def tokens_of(model) -> torch.Tensor:
    return as_batch(tokenize(model, PROMPTS[0]), model)


@pytest.fixture(scope="module")
def orthogonalised(tiny_llama, tmp_path_factory):
    saved = save_orthogonalised(tiny_llama, a_direction(tiny_llama), tmp_path_factory.mktemp("ortho") / "checkpoint")
    return saved, load_model(saved.folder, device="cpu")


def test_hooked_ablation_equals_the_orthogonalised_checkpoint(tiny_llama, orthogonalised):
    saved, reloaded = orthogonalised
    tokens = tokens_of(tiny_llama)
    plain = run_logits(tiny_llama, tokens)
    hooked = run_logits(tiny_llama, tokens, ablation_hooks(tiny_llama, a_direction(tiny_llama)))
    baked = run_logits(reloaded, tokens)
    assert (hooked - plain).abs().max() > 1e-2  # the ablation does something, so the parity below is not trivial
    assert (hooked - baked).abs().max() <= 1e-4
    files = {p.name for p in saved.folder.iterdir()}
    assert {"config.json", "model.safetensors"} <= files and not any(p.endswith((".bin", ".pt", ".pth")) for p in files)
    layers = range(tiny_llama.info.n_layers)
    writers = {f"model.layers.{i}.{m}.weight" for i in layers for m in ("self_attn.o_proj", "mlp.down_proj")}
    assert set(saved.changed) == writers | {"model.embed_tokens.weight"} and not saved.untied
    assert count_hooks(tiny_llama) == 0


def test_ablating_only_each_layers_input_is_not_the_orthogonalised_model(tiny_llama, orthogonalised):
    # resid_pre at every layer and after the last block still lets attention's d-component reach the MLP of the
    # same block; the weights never write it. So the per-block outputs must be ablated too for the two to agree.
    _, reloaded = orthogonalised
    tokens = tokens_of(tiny_llama)
    inputs_only = run_logits(
        tiny_llama, tokens, ablation_hooks(tiny_llama, a_direction(tiny_llama), points=("resid_pre", "final"))
    )
    assert (inputs_only - run_logits(reloaded, tokens)).abs().max() > 1e-3


def test_tied_unembedding_is_saved_untied_and_keeps_parity(tiny_llama_dir, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    hf.config.tie_word_embeddings = True
    hf.lm_head.weight = hf.model.embed_tokens.weight  # the SmolLM2 layout: one matrix embeds and unembeds
    hf.save_pretrained(tmp_path / "tied")
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(tmp_path / "tied")
    tied = load_model(tmp_path / "tied", device="cpu")
    direction = a_direction(tied, seed=5)
    saved = save_orthogonalised(tied, direction, tmp_path / "ortho")
    assert saved.untied and json.loads((saved.folder / "config.json").read_text())["tie_word_embeddings"] is False
    tokens = tokens_of(tied)
    hooked = run_logits(tied, tokens, ablation_hooks(tied, direction))
    assert (hooked - run_logits(load_model(saved.folder, device="cpu"), tokens)).abs().max() <= 1e-4
    changed = orthogonalised_weights(tied, direction)
    torch.testing.assert_close(changed["lm_head.weight"], tied.hf_model.get_input_embeddings().weight, rtol=0, atol=0)


def test_ablated_residual_has_no_component_along_the_direction(tiny_model):
    # both architectures: the hooks need no Llama layout (only the orthogonalised weights do)
    direction = a_direction(tiny_model)
    unit = direction / direction.norm()
    available = set(hook_point_names(tiny_model))
    watched = [
        f"blocks.{layer}.hook_{point}"
        for layer in range(tiny_model.info.n_layers)
        for point in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post")
        if f"blocks.{layer}.hook_{point}" in available
    ]
    assert len(watched) >= 4 * tiny_model.info.n_layers
    seen = {}

    def capture(activation, site):
        seen[site.name] = activation.detach().float().clone()

    tokens = tokens_of(tiny_model)
    captures = [(name, capture) for name in watched]  # registered after the ablation hooks, so they see their output
    run_logits(tiny_model, tokens, captures)
    before = {name: float((act @ unit).abs().max()) for name, act in seen.items()}
    run_logits(tiny_model, tokens, ablation_hooks(tiny_model, direction) + captures)
    for name in watched:
        assert before[name] > 1e-2, name  # the direction was there
        assert float((seen[name] @ unit).abs().max()) <= 1e-5 * float(seen[name].norm(dim=-1).max()), name


def test_engine_generation_with_ablation_equals_the_serial_path(tiny_llama):
    hooks = ablation_hooks(tiny_llama, a_direction(tiny_llama))
    options = {"max_new_tokens": 10, "temperature": 0.0, "stop_at_eos": False, "hooks": hooks}
    engine = generate_batch(tiny_llama, PROMPTS, **options)
    serial = generate_batch_serial(tiny_llama, PROMPTS, **options)
    plain = generate_batch_serial(tiny_llama, PROMPTS, **{**options, "hooks": None})
    assert [s[0].token_ids for s in engine] == [s[0].token_ids for s in serial]
    assert [s[0].token_ids for s in serial] != [s[0].token_ids for s in plain]  # the ablation changed the text
    with ablate(tiny_llama, a_direction(tiny_llama)) as run:  # the context manager decodes serially, same hooks
        inside = generate_batch(tiny_llama, PROMPTS, **{**options, "hooks": None})
    assert [s[0].token_ids for s in inside] == [s[0].token_ids for s in serial]
    assert run.fired(f"blocks.{tiny_llama.info.n_layers - 1}.hook_resid_post") > 0
    assert count_hooks(tiny_llama) == 0


def test_refusal_direction_is_the_normalised_mean_difference(tiny_llama):
    found = refusal_direction(tiny_llama, HARMFUL_INSTRUCTIONS, HARMLESS_INSTRUCTIONS, layer=1)

    def last_residual(prompt):  # one prompt alone, unpadded: an independent path to the same number
        name = "blocks.1.hook_resid_pre"
        return record(tiny_llama, as_batch(tokenize(tiny_llama, prompt, chat=True), tiny_llama), [name]).activations[name][0, -1]

    by_hand = torch.stack([last_residual(p) for p in HARMFUL_INSTRUCTIONS]).mean(0) - torch.stack(
        [last_residual(p) for p in HARMLESS_INSTRUCTIONS]
    ).mean(0)
    assert abs(float(found.direction.norm()) - 1.0) <= 1e-6
    torch.testing.assert_close(found.direction, by_hand / by_hand.norm(), atol=1e-5, rtol=0)
    assert found.mean_difference_norm == pytest.approx(float(by_hand.norm()), rel=1e-5)
    assert (found.layer, found.n_harmful, found.n_harmless) == (1, 12, 12)


@pytest.mark.parametrize(
    ("direction", "message"),
    [
        (torch.zeros(64), "zero vector"),
        (torch.ones(63), "d_model = 64"),
        (torch.ones(2, 64), "d_model = 64"),
        (torch.full((64,), float("nan")), "NaN"),
        (torch.tensor([float("inf")] + [0.0] * 63), "NaN or infinite"),
        ([1.0] * 64, "torch.Tensor"),
    ],
)
def test_bad_directions_are_refused_with_a_message(tiny_llama, tmp_path, direction, message):
    for make in (
        lambda: ablation_hooks(tiny_llama, direction),
        lambda: orthogonalised_weights(tiny_llama, direction),
        lambda: save_orthogonalised(tiny_llama, direction, tmp_path / "out"),
    ):
        with pytest.raises(InputError, match=message):
            make()
    assert not (tmp_path / "out").exists()


def test_bad_settings_are_refused_with_a_message(tiny_llama, tiny_gpt2, tmp_path):
    direction = a_direction(tiny_llama)
    with pytest.raises(InputError, match="do not exist"):
        ablation_hooks(tiny_llama, direction, layers=[7])
    with pytest.raises(InputError, match="Unknown ablation point"):
        ablation_hooks(tiny_llama, direction, points=("resid_mid",))
    with pytest.raises(InputError, match="Llama-family"):
        orthogonalised_weights(tiny_gpt2, a_direction(tiny_gpt2))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        save_orthogonalised(tiny_llama, direction, tmp_path / "full")
    with pytest.raises(InputError, match="different|differ"):
        refusal_direction(tiny_llama, ["Same text."], ["Same text."], layer=0)
    assert ablation_hooks(tiny_llama, direction, layers=[1], points=("resid_pre",))[0][0] == "blocks.1.hook_resid_pre"
    assert Path(tmp_path / "full" / "keep.txt").read_text() == "mine"


@pytest.mark.real_model
def test_on_the_default_model_hooks_and_orthogonalised_weights_agree_to_1e4_in_fp64(tmp_path):
    # In fp32 the two differ by float rounding alone (6e-5 of logits up to 22 here, docs/PAGES.md), which depends on
    # the CPU's kernels; in fp64 that rounding is gone, so what is left measures the orthogonalisation itself (it is 0
    # here: HF's RMSNorm reads its input in fp32, which absorbs fp64's last bits). The refusal direction at layer 15,
    # as the page builds it.
    model = load_model(None, device="cpu", dtype=torch.float64)
    found = refusal_direction(model, layer=15)
    saved = save_orthogonalised(model, found.direction, tmp_path / "smollm2-no-refusal")
    reloaded = load_model(saved.folder, device="cpu", dtype=torch.float64)
    tokens = as_batch(tokenize(model, "Explain how to pick a lock."), model)
    plain = run_logits(model, tokens)
    hooked = run_logits(model, tokens, ablation_hooks(model, found.direction))
    baked = run_logits(reloaded, tokens)
    assert hooked.dtype == baked.dtype == torch.float64
    assert (hooked - plain).abs().max() > 1.0  # the ablation moves logits by whole units, so the parity is not trivial
    assert (hooked - baked).abs().max() <= 1e-4
    assert saved.untied and "lm_head.weight" in saved.changed  # SmolLM2 ties its unembedding; the copy is untied
