"""Compressed variants: pruning is exact, leaves the original alone, and the planted circuit's fate follows it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.circuits.tasks import induction_task
from interp.compression import Variant, make_variant, sparsity, weight_bytes
from interp.compression.variants import pruned_modules
from interp.errors import InputError
from interp.hooks import intervene
from interp.loading import load_model
from interp.toy.induction import SHIPPED, load_card

TOKENS = torch.tensor([[1, 5, 9, 2, 7, 3, 8, 4]])


def _logits(model, tokens=TOKENS):
    with intervene(model), torch.inference_mode():
        return model.bridge(tokens).float()


def test_pruning_nothing_changes_nothing(tiny_model):
    variant = make_variant(tiny_model, Variant("prune_unstructured", 0.0))
    assert torch.equal(_logits(variant), _logits(tiny_model))
    assert variant.info.weights_sha256 != tiny_model.info.weights_sha256  # its cached results are its own


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruning_removes_exactly_the_stated_fraction_and_leaves_the_original_alone(tiny_model, scope):
    before = sparsity(tiny_model)
    original = _logits(tiny_model)
    variant = make_variant(tiny_model, Variant("prune_unstructured", 0.3, scope))
    modules = pruned_modules(variant)
    if scope == "layer":
        for _, module in modules:  # each matrix loses round(0.3 n) weights: PyTorch's rule, exactly
            assert int((module.weight == 0).sum()) == round(0.3 * module.weight.numel())
    else:
        total = sum(m.weight.numel() for _, m in modules)
        assert sum(int((m.weight == 0).sum()) for _, m in modules) == round(0.3 * total)
    assert sparsity(tiny_model) == before and torch.equal(_logits(tiny_model), original)
    assert not torch.allclose(_logits(variant), original)
    assert all(not hasattr(m, "weight_orig") and not m._forward_pre_hooks for _, m in modules)  # made permanent


def test_a_pruned_heads_output_is_zero(tiny_model):
    variant = make_variant(tiny_model, Variant("prune_heads", heads=("L1.H2",)))
    outputs = {}

    def keep(activation, hook):
        outputs[hook.name] = activation.detach()

    with intervene(variant, {"blocks.1.attn.hook_z": keep}), torch.inference_mode():
        variant.bridge(TOKENS)
    with torch.no_grad():
        per_head = torch.einsum("bphe,hed->bphd", outputs["blocks.1.attn.hook_z"], variant.bridge.W_O[1])
    assert per_head[:, :, 2].abs().max() == 0  # what head 2 writes to the residual stream
    assert per_head[:, :, 1].abs().max() > 0
    with pytest.raises(InputError, match="not a head"):
        make_variant(tiny_model, Variant("prune_heads", heads=("L9.H0",)))


def test_bf16_stays_close_to_fp32(tiny_model):
    variant = make_variant(tiny_model, Variant("bf16"))
    assert variant.info.dtype == "bfloat16"
    exact = _logits(tiny_model)
    difference = (_logits(variant) - exact).abs().max().item()
    assert 0 < difference < 0.05 * exact.abs().max().item()  # measured: 1.5-2.5% of the largest logit on these fixtures


def test_the_planted_induction_circuit_survives_mild_pruning_and_breaks_at_extreme_pruning():
    model = load_model(SHIPPED, device="cpu")
    task = induction_task(model, n_prompts=8, half=16)
    card = load_card()

    def copying_loss(candidate) -> float:  # nats on the repeated half: low only while induction works
        with intervene(candidate), torch.inference_mode():
            logits = candidate.bridge(task.clean, logits_to_keep=task.metric.logits_to_keep())
        return float(task.metric(logits)[0])

    full = copying_loss(model)
    uniform = np.log(64)
    # Its silenced heads and MLPs are zero already (about half the projections' weights), so 50% prunes little that is
    # live; measured losses: 0.56 nats at 50%, 1.40 at 90%, 8.5 at 98% (global: 0.58, 1.01, 9.6).
    mild = copying_loss(make_variant(model, Variant("prune_unstructured", 0.5)))
    extreme = copying_loss(make_variant(model, Variant("prune_unstructured", 0.98)))
    previous = card["circuit"]["previous_token_head"]
    cut = copying_loss(make_variant(model, Variant("prune_heads", heads=(f"L{previous['layer']}.H{previous['head']}",))))
    assert full < 1.0 and mild < full + 0.5  # still copying
    assert extreme > uniform - 0.5 and cut > uniform - 0.5  # copying is gone: near guessing among 64 tokens


@pytest.mark.parametrize(
    ("kind", "relative", "kl"),
    # measured on the tiny Llama (largest logit change over the largest logit; mean next-token KL, nats):
    # bf16 2.5% / 0.0003, int8 weights 3.5% / 0.001, dynamic int8 6% / 0.002, int4 weights 35% / 0.09
    [("bf16", 0.05, 0.002), ("int8_weight", 0.08, 0.005), ("int8_dynamic", 0.12, 0.01), ("int4_weight", 0.6, 0.3)],
)
def test_quantised_variants_stay_within_their_stated_tolerance_and_shrink_the_weights(tiny_llama, kind, relative, kl):
    tokens = torch.tensor([[1, 5, 9, 2, 7, 3, 8, 4, 11, 12, 13, 14]])
    exact = _logits(tiny_llama, tokens)
    variant = make_variant(tiny_llama, Variant(kind))
    approximate = _logits(variant, tokens)
    change = (approximate - exact).abs().max().item()
    divergence = (exact.softmax(-1) * (exact.log_softmax(-1) - approximate.log_softmax(-1))).sum(-1).mean().item()
    assert 0 < change < relative * exact.abs().max().item()
    assert 0 < divergence < kl
    assert weight_bytes(variant) < 0.65 * weight_bytes(tiny_llama)  # measured from the storages, not from bit widths
    assert torch.equal(_logits(tiny_llama, tokens), exact)  # the original is untouched


def test_the_planted_heads_survive_mild_pruning_and_the_induction_head_dies_at_extreme_pruning():
    from interp.compression.measure import inside

    model = load_model(SHIPPED, device="cpu")
    mild = inside(model, make_variant(model, Variant("prune_unstructured", 0.5)), ioi=False)
    extreme = inside(model, make_variant(model, Variant("prune_unstructured", 0.98)), ioi=False)
    assert [head for head, _, _ in mild.induction_heads] == ["L1.H2"]  # the planted heads are the only typed ones
    assert [head for head, _, _ in mild.previous_token_heads] == ["L0.H1"]
    assert mild.surviving("induction") == ["L1.H2"] and mild.surviving("previous_token") == ["L0.H1"]
    assert extreme.lost("induction") == ["L1.H2"]


def test_quality_is_exact_for_an_unchanged_copy_and_worsens_with_pruning(tiny_llama):
    from interp.compression.measure import footprint, held_out_tokens, quality

    tokens = held_out_tokens(tiny_llama, windows=2, length=64)
    same = quality(tiny_llama, make_variant(tiny_llama, Variant("prune_unstructured", 0.0)), tokens)
    assert same.kl_to_original == pytest.approx(0.0, abs=1e-6) and same.top1_agreement == 1.0
    assert same.perplexity == pytest.approx(same.original_perplexity, rel=1e-5)
    kls = [quality(tiny_llama, make_variant(tiny_llama, Variant("prune_unstructured", a)), tokens).kl_to_original
           for a in (0.1, 0.5, 0.9)]  # fmt: skip
    assert kls[0] < kls[1] < kls[2]
    full, half = (
        footprint(tiny_llama, tokens, repeats=1, new_tokens=2),
        footprint(make_variant(tiny_llama, Variant("bf16")), tokens, repeats=1, new_tokens=2),
    )
    assert half.weight_bytes == full.weight_bytes // 2 and half.saved_bytes < 0.6 * full.saved_bytes
    assert full.forward_ms > 0 and full.decode_tokens_per_second > 0


def test_pruning_the_heads_a_task_needs_least_costs_less_than_pruning_those_it_needs_most(tiny_llama):
    """Importance for pruning is what zeroing a head does to the metric: the Circuits page's zero-ablation sweep."""
    from interp.circuits.ablation import ablation_sweep
    from interp.circuits.metric import Metric
    from interp.circuits.replacement import run_metric
    from interp.compression.variants import least_important_heads

    tokens = torch.tensor([[1, 5, 9, 2, 7, 3, 8, 4], [2, 6, 1, 3, 9, 4, 5, 7]])
    metric = Metric.logit_diff([5, 6], [7, 8])
    sweep = ablation_sweep(tiny_llama, tokens, metric, method="zero")
    least, most = least_important_heads(sweep, 3), tuple(label for label, _ in sweep.ranked(3))
    assert not set(least) & set(most)
    full = run_metric(tiny_llama, tokens, metric)
    change = {name: abs(run_metric(make_variant(tiny_llama, Variant("prune_heads", heads=heads)), tokens, metric) - full)
              for name, heads in (("least", least), ("most", most))}  # fmt: skip
    assert change["least"] < change["most"]
    with pytest.raises(InputError, match="between 0 and 8"):
        least_important_heads(sweep, 9)


def test_every_run_kind_runs_on_a_quantised_copy_or_says_what_to_do_instead(tiny_llama):
    from tests.runs.test_round_trip import every_example

    variant = make_variant(tiny_llama, Variant("int8_weight"))
    refused = {}
    for kind, spec in every_example(variant).items():
        try:
            spec.run(variant)
        except InputError as exc:  # a clear message, never a torchao NotImplementedError
            refused[kind] = str(exc)
    assert set(refused) == {"edge_circuit", "edge_patch", "compression_study", "steering_transfer", "orthogonalised_export"}
    assert all("quantised" in message and "bf16 or pruned variant" in message for message in refused.values())


def test_a_vector_transfers_exactly_to_an_unchanged_copy_and_its_direction_moves_with_heavy_pruning(tiny_llama):
    from steering.transfer import steering_transfer

    options = {"layer": 1, "coefficient": 4.0, "n_samples": 1, "max_new_tokens": 6}
    same = steering_transfer(tiny_llama, make_variant(tiny_llama, Variant("prune_unstructured", 0.0)), **options)
    assert same.remade_cosine == pytest.approx(1.0, abs=1e-6)
    assert same.on_variant.steered.texts == same.on_original.steered.texts  # same seeds, same weights: same text
    assert same.gain_kept == pytest.approx(1.0) or same.on_original.behaviour_gain == 0
    close = steering_transfer(tiny_llama, make_variant(tiny_llama, Variant("int8_weight")), **options)
    far = steering_transfer(tiny_llama, make_variant(tiny_llama, Variant("prune_unstructured", 0.9)), **options)
    assert 0.98 < close.remade_cosine < 1.0 and far.remade_cosine < close.remade_cosine - 0.05


def test_steering_transfer_says_when_the_pairs_give_no_direction_on_a_toy_vocabulary():
    from steering.transfer import steering_transfer

    model = load_model(SHIPPED, device="cpu")  # word-level t0..t63: every word of the sentiment pairs is unknown
    with pytest.raises(InputError, match="give no direction"):
        steering_transfer(model, make_variant(model, Variant("bf16")), layer=1, n_samples=1, max_new_tokens=2)
