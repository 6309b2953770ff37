"""Circuit methods recover a circuit planted by construction, and hold their identities on SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from interp import InputError, load_model
from interp.circuits import (
    Component,
    Metric,
    ablatable_components,
    ablate,
    ablation_sweep,
    all_heads,
    attribution_patch,
    circuit_faithfulness,
    direct_logit_attribution,
    patch_sweep,
)
from interp.circuits.tasks import (
    align,
    custom_task,
    factual_task,
    induction_task,
    ioi_task,
    metric_choices,
    reference_batch,
    with_metric,
)
from interp.hooks import count_hooks
from interp.toy import induction as toy

PREVIOUS_TOKEN, INDUCTION = Component("head", 0, 1), Component("head", 1, 2)


@pytest.fixture(scope="module")
def planted():
    return load_model(toy.SHIPPED, device="cpu")


@pytest.fixture(scope="module")
def planted_task(planted):
    return induction_task(planted, n_prompts=32, half=16)


@pytest.fixture(scope="module")
def reference(planted_task):
    return torch.randint(0, toy.VOCAB, (64, planted_task.clean.shape[1]), generator=torch.Generator().manual_seed(5))


# --- the planted model itself -------------------------------------------------------------------


def test_card_names_the_circuit_the_patterns_show(planted):
    from interp.attention import compute_head_scores

    card = toy.load_card()
    assert (card["circuit"]["previous_token_head"]["layer"], card["circuit"]["previous_token_head"]["head"]) == (0, 1)
    assert (card["circuit"]["induction_head"]["layer"], card["circuit"]["induction_head"]["head"]) == (1, 2)
    assert card["held_out_loss_repeated_nats"] < 1.0 < 4.0 < card["held_out_loss_other_nats"]
    assert (toy.SHIPPED / "model.safetensors").stat().st_size < 2_000_000
    scores = compute_head_scores(planted, n_sequences=16, repeat_length=16)
    assert scores.top_heads("induction", 1)[0][:2] == (1, 2)
    assert np.argmax(scores.previous_token[0]) == 1


def test_a_short_retraining_plants_the_same_structure(tmp_path):
    model, report = toy.train(seed=0, steps=400)
    assert report.loss_repeated < 1.5 and report.loss_other > 3.5
    folder = toy.save(model, report, tmp_path / "retrained")
    circuit = toy.load_card(folder)["circuit"]
    assert (circuit["induction_head"]["layer"], circuit["induction_head"]["head"]) == (1, 2)
    assert circuit["induction_head"]["induction_score"] > 0.5
    assert (circuit["previous_token_head"]["layer"], circuit["previous_token_head"]["head"]) == (0, 1)


# --- the methods recover it --------------------------------------------------------------------------


def test_activation_patching_puts_the_induction_head_first(planted, planted_task):
    denoise = patch_sweep(planted, planted_task.clean, planted_task.corrupted, planted_task.metric, "heads")
    assert denoise.ranked(1)[0][0] == "L1.H2" and denoise.values[1, 2] > 0.8
    noise = patch_sweep(planted, planted_task.clean, planted_task.corrupted, planted_task.metric, "heads", direction="noise")
    # Noising: putting a corrupted value into the clean run breaks what depends on it (score near 0).
    order = np.argsort(noise.values, axis=None)[:2]
    assert {divmod(int(i), 4) for i in order} == {(0, 1), (1, 2)}
    assert count_hooks(planted) == 0


def test_ablation_puts_the_two_circuit_heads_first(planted, planted_task, reference):
    sweep = ablation_sweep(planted, planted_task.clean, planted_task.metric, method="mean", reference=reference)
    order = np.argsort(-sweep.values, axis=None)[:2]  # the largest rise in loss
    assert {divmod(int(i), 4) for i in order} == {(0, 1), (1, 2)}


def test_attribution_patching_agrees_with_activation_patching(planted, planted_task):
    exact = patch_sweep(planted, planted_task.clean, planted_task.corrupted, planted_task.metric, "heads")
    estimate = attribution_patch(planted, planted_task.clean, planted_task.corrupted, planted_task.metric, "heads")
    assert spearmanr(exact.values.ravel(), estimate.values.ravel()).statistic >= 0.8
    assert estimate.ranked(1)[0][0] == "L1.H2"
    assert estimate.forward_rows == 2 * planted_task.clean.shape[0]  # 2 forward passes (+ 1 backward), as promised
    # Both methods read the same two runs: their clean and corrupted metrics must agree.
    assert estimate.metric_clean == pytest.approx(exact.metric_clean, abs=1e-5)
    assert estimate.metric_corrupted == pytest.approx(exact.metric_corrupted, abs=1e-5)


def test_ablating_the_circuit_destroys_copying_and_nothing_else_does(planted, planted_task, reference):
    clean, metric = planted_task.clean, planted_task.metric
    first_half = Metric.repeated_loss(clean, positions=list(range(0, 15)))  # unpredictable tokens
    with torch.inference_mode():
        first_half_loss = float(first_half(planted.bridge(clean))[0])
    both = ablate(planted, clean, [PREVIOUS_TOKEN, INDUCTION], metric, method="mean", reference=reference)
    assert both.metric_full < 1.0
    assert both.metric_ablated > 0.9 * first_half_loss  # copying is gone: as bad as guessing
    for head in all_heads(planted):
        if head.label in {"L0.H1", "L1.H2"}:
            continue
        assert abs(ablate(planted, clean, [head], metric, method="mean", reference=reference).change) < 0.05


def test_keeping_only_the_circuit_keeps_the_behaviour(planted, planted_task, reference):
    circuit = [PREVIOUS_TOKEN, INDUCTION]
    kept = circuit_faithfulness(planted, planted_task.clean, circuit, planted_task.metric, reference=reference)
    assert abs(kept.circuit_only - kept.full) < 0.05 and kept.no_heads > kept.full + 3
    assert kept.preserved == pytest.approx(1.0, abs=0.02) and kept.circuit == ("L0.H1", "L1.H2")


def test_zero_and_resample_ablation(planted, planted_task):
    zero = ablate(planted, planted_task.clean, [INDUCTION], planted_task.metric, method="zero")
    resample = ablate(
        planted, planted_task.clean, [INDUCTION], planted_task.metric, method="resample", corrupted=planted_task.corrupted
    )
    assert zero.change > 2 and resample.change > 2
    with pytest.raises(InputError, match="needs a corrupted prompt"):
        ablate(planted, planted_task.clean, [INDUCTION], planted_task.metric, method="resample")


def test_residual_and_layer_sweeps_have_layer_by_position_shape(planted, planted_task):
    for kind in ("resid_pre", "attn_out", "mlp_out"):
        result = patch_sweep(
            planted, planted_task.clean[:4], planted_task.corrupted[:4], _first_rows(planted_task.metric, 4), kind
        )
        assert result.values.shape == (2, planted_task.clean.shape[1])
    mlp = patch_sweep(planted, planted_task.clean[:4], planted_task.corrupted[:4], _first_rows(planted_task.metric, 4), "mlp_out")
    assert np.allclose(mlp.values, 0, atol=1e-6)  # the MLPs are zeroed by construction


def _first_rows(metric: Metric, n: int) -> Metric:
    return Metric.repeated_loss(torch.tensor(metric.targets[:n]), metric.positions)


# --- identities on the real model ------------------------------------------------------------------------


def test_patching_a_run_with_its_own_activations_changes_nothing(default_model):
    task = ioi_task(default_model, n_prompts=2)
    for kind in ("heads", "resid_pre", "attn_out", "mlp_out"):
        result = patch_sweep(default_model, task.clean, task.clean, task.metric, kind)
        # Float32 rounding only: the patched rows run in larger batches than the clean run, and on some CPUs the
        # GEMM kernels then round a few ulps differently (1.9e-6 on a metric of 5.8 here, on the old code too).
        assert np.abs(result.raw_values - result.metric_clean).max() <= 1e-6 * max(1.0, abs(result.metric_clean))
        assert not result.comparable  # nothing to normalise against: the page says so


def test_direct_logit_attribution_sums_to_the_metric(default_model):
    task = ioi_task(default_model, n_prompts=2)
    dla = direct_logit_attribution(default_model, task.clean, task.metric)
    assert dla.heads.shape == (30, 9)
    assert abs(dla.total - dla.metric) <= 1e-3


def test_direct_logit_attribution_sums_on_layernorm_models(tiny_gpt2):
    mary, john = (tiny_gpt2.tokenizer(t, add_special_tokens=False).input_ids[0] for t in (" Mary", " John"))
    tokens = torch.tensor([tiny_gpt2.tokenizer("When Mary and John went to the store, John gave a drink to").input_ids])
    dla = direct_logit_attribution(tiny_gpt2, tokens, Metric.logit_diff([mary], [john]))
    assert abs(dla.total - dla.metric) <= 1e-3


def test_ioi_and_factual_presets_run_end_to_end(default_model):
    ioi = ioi_task(default_model)
    assert ioi.clean.shape == ioi.corrupted.shape and ioi.clean.shape[0] >= 2
    heads = patch_sweep(default_model, ioi.clean, ioi.corrupted, ioi.metric, "heads")
    assert heads.metric_clean > 0 > heads.metric_corrupted  # the right name wins, then loses
    assert heads.comparable and heads.values.shape == (30, 9)
    factual = factual_task(default_model)
    resid = patch_sweep(default_model, factual.clean, factual.corrupted, factual.metric, "resid_pre")
    assert resid.values.shape == (30, factual.clean.shape[1]) and resid.comparable
    same = (factual.clean[0] == factual.corrupted[0]).numpy()
    # Where the two prompts share a token, the layer-0 stream is identical: patching it does nothing.
    assert np.abs(resid.values[0, same]).max() <= 1e-5
    assert resid.values[0, ~same].max() > 0.1  # while patching the subject moves the answer


def test_custom_pairs_must_line_up(tiny_llama):
    with pytest.raises(InputError, match="same token length|line up token by token"):
        custom_task(tiny_llama, "I love dogs", "I love dogs because they", " they", " are")
    clean, corrupted = align(tiny_llama, "I love dogs", "I love dogs because they")
    assert len(clean) == len(corrupted)


# --- metric choice and the mean-ablation reference -------------------------------------------------------

PAIR = (
    "When Mary and John went to the store, John gave a drink to",
    "When Mary and John went to the store, Mary gave a drink to",
)


def test_log_prob_metric_reads_the_answer_log_probability(tiny_llama):
    task = with_metric(custom_task(tiny_llama, *PAIR, " Mary", " John"), "log_prob")
    assert task.metric.kind == "log_prob" and metric_choices(task) == ["logit_diff", "log_prob"]
    with torch.inference_mode():
        logits = tiny_llama.bridge(task.clean)
    mary = tiny_llama.tokenizer(" Mary", add_special_tokens=False).input_ids[0]
    expected = torch.log_softmax(logits[0, -1].float(), dim=-1)[mary]  # by hand, from the full logits
    assert float(task.metric(logits)[0]) == pytest.approx(float(expected), abs=1e-5)


def test_induction_has_only_its_loss_metric(planted):
    task = induction_task(planted, n_prompts=2)
    assert metric_choices(task) == ["repeated_loss"]
    with pytest.raises(InputError, match="cannot be measured"):
        with_metric(task, "log_prob")


def test_mean_ablation_of_a_single_pair_uses_a_real_reference_batch(tiny_llama):
    task = custom_task(tiny_llama, *PAIR, " Mary", " John")
    heads = [
        Component("head", layer, head) for layer in range(tiny_llama.info.n_layers) for head in range(tiny_llama.info.n_heads)
    ]
    # Why: the mean over a one-prompt batch is that prompt's own activation, so "ablating" with it changes nothing.
    own = ablate(tiny_llama, task.clean, heads, task.metric, method="mean", reference=task.clean)
    assert own.metric_ablated == pytest.approx(own.metric_full, abs=1e-5)
    reference = reference_batch(task)
    assert reference.shape[0] == 2
    real = ablate(tiny_llama, task.clean, heads, task.metric, method="mean", reference=reference)
    assert abs(real.metric_ablated - real.metric_full) > 1e-3


def test_component_labels_name_their_component(planted):
    offered = ablatable_components(planted)
    assert len(offered) == 2 * 4 + 2 * 2  # 8 heads, then each layer's attention and MLP output
    for component in [*offered, Component("resid_pre", 1, 5)]:
        assert Component.from_label(component.label) == component
    with pytest.raises(InputError, match="names no component"):
        Component.from_label("layer 3 head 2")


def test_ablating_the_layer_holding_the_induction_head_destroys_copying(planted, planted_task):
    clean, metric = planted_task.clean, planted_task.metric
    attention = ablate(planted, clean, [Component.from_label("L1.attn_out")], metric, method="zero")
    head = ablate(planted, clean, [Component.from_label("L1.H2")], metric, method="zero")
    # L1.H2 is layer 1's only writing head: zeroing the layer's attention output is zeroing that head.
    assert attention.metric_ablated == pytest.approx(head.metric_ablated, abs=1e-4)
    assert attention.metric_ablated > attention.metric_full + 1


def test_every_component_kind_has_one_label_format():
    assert [Component("head", 1, 2).label, Component("attn_out", 1).label, Component("mlp_out", 0).label] == [
        "L1.H2",
        "L1.attn_out",
        "L0.mlp_out",
    ]
    assert Component("resid_pre", 1, 5).label == "L1.resid_pre@5"
    assert Component.from_label("L1 resid_pre @ pos 5") == Component("resid_pre", 1, 5)  # the spelling before
    assert Component("attn_out", 1).description == "L1 attention output"


# --- the runs as specs ------------------------------------------------------------------------------------


def test_patching_run_gives_both_methods_on_one_task(planted):
    from interp.circuits import CircuitTask, PatchingRun

    seen = []
    pair = PatchingRun(CircuitTask("induction")).run(planted, lambda fraction, text: seen.append(fraction))
    assert pair.activation.ranked(1)[0][0] == "L1.H2" and pair.attribution.method == "attribution"
    assert -1 <= pair.correlation <= 1 and seen and max(seen) <= 1.0
    with pytest.raises(InputError, match="Unknown direction"):
        PatchingRun(CircuitTask("induction"), direction="sideways")


def test_ablation_run_reports_faithfulness_only_for_heads(planted):
    from interp.circuits import AblationRun, CircuitTask

    task = CircuitTask("induction")
    heads = AblationRun(task, ("L0.H1", "L1.H2"), method="zero").run(planted)
    assert heads.ablation.change > 2 and heads.faithfulness is not None
    layer = AblationRun(task, ("L1.attn_out",), method="zero").run(planted)
    assert layer.faithfulness is None and layer.ablation.components == ("L1.attn_out",)
    with pytest.raises(InputError, match="names no component"):
        AblationRun(task, ("head 3",))
    with pytest.raises(InputError, match="not in this model"):
        AblationRun(task, ("L7.H0",)).run(planted)


def test_direct_logit_attribution_run_needs_a_logit_metric(tiny_llama):
    from interp.circuits import CircuitTask, DirectLogitAttributionRun

    with pytest.raises(InputError, match="explains a logit"):
        DirectLogitAttributionRun(CircuitTask("induction"))
    dla = DirectLogitAttributionRun(CircuitTask.custom(*PAIR, " Mary", " John")).run(tiny_llama)
    assert abs(dla.total - dla.metric) <= 1e-3 and {label for label, _ in dla.ranked(50)} >= {"L0.H0", "L1.mlp_out"}
