"""Edge-level circuits: the graph, EAP against real edge patching, EAP-IG's completeness, the planted circuit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.circuits.edges import (
    LOGITS,
    EdgeCircuitRun,
    EdgePatchRun,
    circuit_keep,
    edge_graph,
    edge_patched_metric,
    faithfulness_curve,
    prune,
    score_edges,
    single_edge_keeps,
    top_circuit,
)
from interp.circuits.metric import Metric
from interp.circuits.replacement import run_metric
from interp.circuits.tasks import CircuitTask, induction_task
from interp.errors import InputError
from interp.loading import load_model
from interp.toy import lookup
from interp.toy.induction import SHIPPED, load_card


def _pair(model, seed: int = 0):
    """Random prompts and a copy with two tokens changed; a logit difference between two fixed tokens."""
    generator = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, model.info.d_vocab - 1, (2, 8), generator=generator)
    corrupted = clean.clone()
    corrupted[:, 2] = torch.randint(0, model.info.d_vocab - 1, (2,), generator=generator)
    corrupted[:, 5] = torch.randint(0, model.info.d_vocab - 1, (2,), generator=generator)
    return clean, corrupted, Metric.logit_diff([5, 6], [7, 8])


def test_graph_of_a_gqa_model_scores_a_shared_key_input_once_per_key_value_head(tiny_llama):
    info = tiny_llama.info  # 2 layers, 4 query heads sharing 2 key/value heads
    graph = edge_graph(info)
    assert len(graph.upstream) == 1 + info.n_layers * (info.n_heads + 1)
    assert len(graph.downstream) == info.n_layers * (info.n_heads + 2 * info.n_kv_heads + 1) + 1
    shared = graph.downstream.index("L1.KV1.k")
    assert graph.downstream_heads[shared] == (2, 3)
    assert "L1.H2.k" not in graph.downstream and "L1.H2.q" in graph.downstream
    up = graph.upstream.index
    assert graph.real[shared, up("L0.H3")] and graph.real[shared, up("L0.mlp")] and not graph.real[shared, up("L1.H0")]
    mlp_in = graph.downstream.index("L1.mlp")
    assert graph.real[mlp_in, up("L1.H0")] and not graph.real[mlp_in, up("L1.mlp")]  # an MLP reads its own layer's heads
    assert graph.real[-1].all()  # the logits read everything


def test_keeping_every_edge_is_the_clean_run_and_none_the_corrupted_run(tiny_model):
    clean, corrupted, metric = _pair(tiny_model)
    graph = edge_graph(tiny_model.info)
    everything, nothing = edge_patched_metric(tiny_model, clean, corrupted, metric, [graph.real, np.zeros_like(graph.real)])
    assert everything == pytest.approx(run_metric(tiny_model, clean, metric), abs=1e-4)  # the plain model, no edge hooks
    assert nothing == pytest.approx(run_metric(tiny_model, corrupted, metric), abs=1e-4)
    assert abs(everything - nothing) > 1e-2  # the pair does change the metric, so the check can fail


def test_eap_is_the_slope_of_real_edge_patching(tiny_model):
    """Patch each top edge a small fraction of the way to corrupted: (change / fraction) -> the EAP score."""
    clean, corrupted, metric = _pair(tiny_model)
    scores = score_edges(tiny_model, clean, corrupted, metric, method="eap")
    edges = scores.order()[:6]
    fraction = 1e-3
    patched = edge_patched_metric(tiny_model, clean, corrupted, metric, single_edge_keeps(scores.graph, edges), fraction=fraction)
    slopes = (patched - scores.metric_clean) / fraction
    estimates = np.array([scores.scores[v, u] for v, u in edges])
    assert np.abs(estimates).min() > 1e-2  # real effects, not zeros agreeing with zeros
    np.testing.assert_allclose(slopes, estimates, rtol=0.03, atol=2e-3)


def test_eap_ig_edges_out_of_the_input_add_up_to_the_whole_change_as_steps_grow(tiny_model):
    """Integrated gradients' completeness: sum over input -> * edges = metric(corrupted) - metric(clean)."""
    clean, corrupted, metric = _pair(tiny_model, seed=1)
    errors = []
    for steps in (2, 8, 32):
        scores = score_edges(tiny_model, clean, corrupted, metric, method="eap-ig", steps=steps)
        change = scores.metric_corrupted - scores.metric_clean
        errors.append(abs(scores.input_total() - change))
    assert errors[-1] < 0.01 * abs(change)
    assert errors[0] > errors[1] > errors[-1]
    eap = score_edges(tiny_model, clean, corrupted, metric, method="eap")
    assert abs(eap.input_total() - change) > 5 * errors[-1]  # one gradient at the clean end is not complete


def test_pruning_drops_only_edges_that_cannot_matter(tiny_llama):
    clean, corrupted, metric = _pair(tiny_llama)
    graph = edge_graph(tiny_llama.info)
    rng = np.random.default_rng(0)
    every = graph.all_edges()
    for _ in range(3):
        chosen = [every[i] for i in rng.choice(len(every), size=len(every) // 4, replace=False)]
        kept = prune(graph, chosen)
        assert len(kept) < len(chosen)
        full, pruned = edge_patched_metric(
            tiny_llama, clean, corrupted, metric, [circuit_keep(graph, chosen), circuit_keep(graph, kept)]
        )
        assert pruned == pytest.approx(full, abs=1e-4)
    dangling = [graph.edge_index("L0.H0 -> L1.mlp")]  # L0.H0 reads nothing that is kept: its output is the corrupted one
    assert prune(graph, dangling) == []


@pytest.fixture(scope="module")
def planted():
    model = load_model(SHIPPED, device="cpu")
    task = induction_task(model, n_prompts=8, half=16)
    return model, task, score_edges(model, task.clean, task.corrupted, task.metric, method="eap-ig", steps=10)


def test_eap_ig_finds_the_planted_induction_circuit(planted):
    """The circuit by construction: input -> L0.H1 (previous token, via its value) -> L1.H2's key -> logits."""
    model, task, scores = planted
    card = load_card()["circuit"]
    previous = f"L{card['previous_token_head']['layer']}.H{card['previous_token_head']['head']}"
    induction = f"L{card['induction_head']['layer']}.H{card['induction_head']['head']}"
    top = {label for label, _ in scores.ranked(3)}
    assert top == {f"{induction} -> logits", f"{previous} -> {induction}.k", f"input -> {previous}.v"}
    circuit = top_circuit(scores, 5)
    assert set(circuit.nodes()) == {"input", previous, induction, LOGITS}
    curve = faithfulness_curve(model, task.clean, task.corrupted, task.metric, scores, random_repeats=4)
    five = curve.sizes.index(5)
    assert curve.faithfulness[five] >= 0.9  # five edges: the spine plus the token the induction head copies (its value)
    assert max(curve.random_high[: five + 1]) < 0.1  # as many random edges do nothing
    assert curve.cpr > curve.random_cpr + 0.5 and curve.cmd < curve.random_cmd - 0.5


def test_the_two_named_edges_alone_carry_nothing_once_the_previous_token_heads_input_is_patched(planted):
    """Why the planted circuit needs its input edges: with input -> L0.H1.v patched, L0.H1 outputs its corrupted value,
    so the edge L0.H1 -> L1.H2.k carries no difference (docs/CIRCUITS.md)."""
    model, task, scores = planted
    graph = scores.graph
    two = [graph.edge_index("L0.H1 -> L1.H2.k"), graph.edge_index("L1.H2 -> logits")]
    three = [*two, graph.edge_index("input -> L0.H1.v")]
    keeps = [circuit_keep(graph, two), circuit_keep(graph, three)]
    metrics = edge_patched_metric(model, task.clean, task.corrupted, task.metric, keeps)
    assert metrics[0] == pytest.approx(scores.metric_corrupted, abs=1e-4)
    assert abs(metrics[1] - scores.metric_corrupted) > 1.0


def test_edge_runs_check_their_inputs_and_patch_for_real(tiny_llama):
    task = CircuitTask.custom("When Mary and John left, John thanked", "When Mary and John left, Mary thanked", " Mary", " John")
    result = EdgeCircuitRun(task, method="eap", random_repeats=1, verify=3).run(tiny_llama)
    assert result.curve.faithfulness[-1] == pytest.approx(1.0, abs=1e-4)  # the whole graph is the model
    assert len(result.checks) == 3 and all(np.isfinite(c.patched) for c in result.checks)
    label = result.checks[0].edge
    (check,) = EdgePatchRun(task, (label,), method="eap").run(tiny_llama)
    assert check.patched == pytest.approx(result.checks[0].patched, abs=1e-5)
    with pytest.raises(InputError, match="names no edge"):
        EdgePatchRun(task, ("L9.H9 -> logits",)).run(tiny_llama)
    with pytest.raises(InputError, match="is not an edge"):
        EdgePatchRun(task, ("L1.H0 -> L0.mlp",)).run(tiny_llama)
    with pytest.raises(InputError, match="steps"):
        EdgeCircuitRun(task, steps=0)
    same = CircuitTask.custom("When Mary and John left, John thanked", "When Mary and John left, John thanked", " Mary", " John")
    with pytest.raises(InputError, match="same metric"):
        EdgeCircuitRun(same, method="eap").run(tiny_llama)


def test_eap_ig_finds_the_planted_lookup_circuit_and_its_query_composition():
    """The second planted model (interp/toy/lookup.py): L0.H1 moves the asked key to '?', L1.H2 looks it up.

    Unlike the induction circuit, the layer-0 head feeds the layer-1 head's *query*: that edge is in the circuit,
    and the circuit without it loses a real share of its faithfulness."""
    model = load_model(lookup.SHIPPED, device="cpu")
    card = lookup.load_card()["circuit"]
    mover = f"L0.H{card['mover_head']['head']}"
    looker = f"L1.H{card['lookup_head']['head']}"
    clean, corrupted, answers, others = lookup.lookup_batch(8, torch.Generator().manual_seed(5))
    metric = Metric.logit_diff(answers.tolist(), others.tolist())
    scores = score_edges(model, clean, corrupted, metric, method="eap-ig", steps=10)
    assert scores.metric_clean > 5 > -5 > scores.metric_corrupted  # the swapped key flips the answer
    top = {label for label, _ in scores.ranked(4)}
    assert top == {f"input -> {mover}.v", f"{mover} -> {looker}.q", f"{mover} -> {looker}.k", f"{looker} -> logits"}
    graph = scores.graph
    circuit = top_circuit(scores, 5)
    assert set(circuit.nodes()) == {"input", mover, looker, LOGITS}
    without_query = [edge for edge in circuit.edges if graph.edge_label(*edge) != f"{mover} -> {looker}.q"]
    keeps = [circuit.keep(), circuit_keep(graph, without_query)]
    gap = scores.metric_clean - scores.metric_corrupted
    faithful = (edge_patched_metric(model, clean, corrupted, metric, keeps) - scores.metric_corrupted) / gap
    assert faithful[0] >= 0.9
    assert faithful[0] - faithful[1] > 0.1  # the query-composition edge carries part of the behaviour


def test_the_induction_circuit_composes_through_keys_not_queries(planted):
    _, _, scores = planted
    assert "L0.H1 -> L1.H2.q" not in {label for label, _ in scores.ranked(5)}


def test_lookup_prompts_differ_only_in_the_asked_key_and_their_answers_are_the_paired_values():
    clean, corrupted, answers, others = lookup.lookup_batch(16, torch.Generator().manual_seed(0))
    assert (clean[:, 1:] == corrupted[:, 1:]).all() and (clean[:, 0] != corrupted[:, 0]).all()
    words = lookup.WORDS
    for row, answer, other, swapped in zip(clean, answers, others, corrupted[:, 0], strict=True):
        pairs = {words[t][1]: words[t][3] for t in row[1:-1].tolist()}  # "k3v0" -> key "3", value "0"
        assert words[answer] == f"V{pairs[words[row[0]][1]]}" and words[other] == f"V{pairs[words[swapped][1]]}"


def test_the_ioi_circuit_on_the_default_model_beats_random_circuits_of_its_size(default_model):
    """The figures in docs/CIRCUITS.md: EAP-IG (m = 5) on the IOI preset, one random circuit per size."""
    result = EdgeCircuitRun(CircuitTask("ioi"), method="eap-ig", steps=5, random_repeats=1, verify=2).run(default_model)
    curve = result.curve
    assert result.scores.graph.n_edges == 70_651
    assert curve.cpr > 0.9 and curve.cmd < 0.1
    assert curve.cpr > curve.random_cpr + 0.5
    one_percent = curve.sizes.index(round(0.01 * curve.n_edges))
    assert curve.faithfulness[one_percent] > 0.5 > 0.1 > abs(curve.random_mean[one_percent])
    for check in result.checks:  # the top edges' estimates have the sign and size of their real patches
        assert np.sign(check.estimate) == np.sign(check.patched) and abs(check.error) < 0.5 * abs(check.patched)
