"""KL damage: 0 without steering, equal to a hand computation, counted only over the generated positions; the batched
path equals the serial one; evaluations, sweeps, live samples and their figures show it; old records load."""

from __future__ import annotations

import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from transformers import DynamicCache

from interp import InputError, generate, intervene
from interp.forward import run_logits
from interp.generation import generate_batch
from interp.serialise import dumps, loads
from interp.tokens import tokenize
from steering.apply import steering_hooks
from steering.kl import KLDamage, mean_kl, mean_kl_batched
from steering.live import UnsteeredSamples, start_steered
from steering.plots import pareto_plot, sweep_heatmaps
from steering.runs import SteeringEvaluation, SteeringSweep, batch_summary
from steering.scores import SCORERS
from steering.sweep import evaluate, sweep
from tests.steering.test_vector import make

PROMPTS = ("When Mary and John went to the store, John gave a drink to", "I think the weather")


def continuations(model, hooks, n_tokens=6):
    return [generate(model, p, max_new_tokens=n_tokens, stop_at_eos=False, hooks=hooks).token_ids for p in PROMPTS]


def full_pass_kl(model, prompt, continuation, hooks):
    """The reference: one uncached forward pass over prompt + continuation with and without the hooks, then
    torch.distributions' KL at the positions that predict the continuation's tokens."""
    prompt_ids = tokenize(model, prompt)
    tokens = torch.tensor([prompt_ids + list(continuation)])
    plain = run_logits(model, tokens)[0].double()
    steered = run_logits(model, tokens, hooks)[0].double()
    positions = slice(len(prompt_ids) - 1, len(prompt_ids) + len(continuation) - 1)
    p = torch.distributions.Categorical(logits=plain[positions])
    q = torch.distributions.Categorical(logits=steered[positions])
    return torch.distributions.kl_divergence(p, q)


def stepwise_log_probs(model, prompt, continuation, hooks):
    """The reference for position-dependent hooks: decode one token at a time on a KV cache, as generation does."""
    prompt_ids = tokenize(model, prompt)
    rows = []
    with intervene(model, hooks), torch.inference_mode():
        cache = DynamicCache(config=model.hf_model.config)
        model.position_offset = 0
        rows.append(model.bridge(torch.tensor([prompt_ids], device=model.device), past_key_values=cache)[0, -1])
        for i, token in enumerate(continuation[:-1]):
            model.position_offset = len(prompt_ids) + i
            rows.append(model.bridge(torch.tensor([[token]], device=model.device), past_key_values=cache)[0, -1])
    return torch.log_softmax(torch.stack(rows).double(), dim=-1)


def explicit_kl(p_log, q_log):
    return (p_log.exp() * (p_log - q_log)).sum(-1)


def test_without_steering_the_kl_is_exactly_zero(tiny_model):
    generated = continuations(tiny_model, None)
    for hooks in (None, []):
        damage = mean_kl(tiny_model, PROMPTS, generated, hooks)
        assert isinstance(damage, KLDamage) and damage.unit == "nats"
        assert damage.mean == 0.0 and damage.per_sample == (0.0, 0.0)
        assert all(value == 0.0 for values in damage.per_position for value in values)
        assert [len(values) for values in damage.per_position] == [len(c) for c in generated]


def test_kl_equals_a_hand_computation_over_the_generated_positions(tiny_model):
    hooks = steering_hooks(tiny_model, make(tiny_model, layers=(1,), scale=2.0), 1.0)
    generated = continuations(tiny_model, hooks)
    damage = mean_kl(tiny_model, PROMPTS, generated, hooks)
    references = [full_pass_kl(tiny_model, p, c, hooks) for p, c in zip(PROMPTS, generated, strict=True)]
    for got, reference in zip(damage.per_position, references, strict=True):
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), reference, rtol=1e-4, atol=1e-6)
    per_sample = [float(r.mean()) for r in references]
    assert damage.per_sample == pytest.approx(per_sample, rel=1e-4, abs=1e-6)
    assert damage.mean == pytest.approx(sum(per_sample) / len(per_sample), rel=1e-4, abs=1e-6)
    assert damage.mean > 1e-3 and all(value > 0 for value in damage.per_sample)  # strong steering does damage


def test_stronger_steering_moves_the_distributions_further(tiny_llama):
    vector = make(tiny_llama, layers=(1,), scale=2.0)
    generated = continuations(tiny_llama, None, n_tokens=4)
    means = [mean_kl(tiny_llama, PROMPTS, generated, steering_hooks(tiny_llama, vector, c)).mean for c in (0.0, 0.3, 3.0)]
    assert means[0] == 0.0 < means[1] < means[2]


@pytest.mark.parametrize("positions", ["generated", "prompt"])
def test_steering_only_some_positions_is_measured_as_generation_ran_it(tiny_llama, positions):
    hooks = steering_hooks(tiny_llama, make(tiny_llama, layers=(1,), scale=2.0), 1.0, positions=positions)
    generated = continuations(tiny_llama, hooks, n_tokens=5)
    damage = mean_kl(tiny_llama, PROMPTS, generated, hooks)
    for prompt, continuation, got in zip(PROMPTS, generated, damage.per_position, strict=True):
        reference = explicit_kl(
            stepwise_log_probs(tiny_llama, prompt, continuation, None),
            stepwise_log_probs(tiny_llama, prompt, continuation, hooks),
        )
        torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), reference, rtol=1e-4, atol=1e-6)
        if positions == "generated":  # the first token came from the prompt pass, which this steering leaves alone
            assert got[0] == 0.0 and all(value > 0 for value in got[1:])
        else:  # the steered prompt reaches every later position through attention
            assert all(value > 0 for value in got)


def test_an_empty_continuation_is_nan_and_left_out_of_the_mean(tiny_llama):
    hooks = steering_hooks(tiny_llama, make(tiny_llama, layers=(1,), scale=2.0), 1.0)
    generated = continuations(tiny_llama, hooks, n_tokens=3)
    damage = mean_kl(tiny_llama, PROMPTS, [generated[0], ()], hooks)
    assert math.isnan(damage.per_sample[1]) and damage.per_position[1] == ()
    assert damage.mean == damage.per_sample[0] > 0
    single = mean_kl(tiny_llama, [tokenize(tiny_llama, PROMPTS[0])], [generated[0][:1]], hooks)  # prompt as ids
    assert len(single.per_position[0]) == 1 and single.mean == single.per_position[0][0]


@pytest.mark.parametrize(
    ("prompts", "continuations_", "message"),
    [
        ((), (), "at least one prompt"),
        (PROMPTS, ([1, 2],), "one continuation per prompt"),
        (PROMPTS[:1], ([10**9],), "outside"),
        (PROMPTS[:1], ([-1],), "outside"),
        (PROMPTS[:1], ("hello",), "list of token ids"),
        (PROMPTS[:1], ((),), "None of the continuations"),
    ],
)
def test_bad_input_is_an_input_error(tiny_llama, prompts, continuations_, message):
    with pytest.raises(InputError, match=message):
        mean_kl(tiny_llama, prompts, continuations_, None)


# --- the batched path, and KL wherever damage is shown ---------------------------------------------------------------

MIXED = ("I love", "The store is", "When Mary and John went to the store, John gave a drink to", "I think", "The store")


@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_the_batched_path_equals_the_serial_one(tiny_model, positions):
    hooks = steering_hooks(tiny_model, make(tiny_model, layers=(0, 1), scale=0.7), 1.0, positions=positions)
    samples = [
        g for group in generate_batch(tiny_model, list(MIXED), max_new_tokens=7, n_samples=2, seed=4, hooks=hooks) for g in group
    ]
    prompts = [g.prompt_token_ids for g in samples]
    generated = [g.token_ids[: 1 + i % 7] for i, g in enumerate(samples)]  # lengths 1..7: right padding in every batch
    generated[3] = ()  # an empty continuation among the others
    serial = mean_kl(tiny_model, prompts, generated, hooks)
    for batch_size in (3, 8):
        batched = mean_kl_batched(tiny_model, prompts, generated, hooks, batch_size=batch_size)
        assert [len(v) for v in batched.per_position] == [len(v) for v in serial.per_position]
        for got, want in zip(batched.per_position, serial.per_position, strict=True):
            assert max((abs(a - b) for a, b in zip(got, want, strict=True)), default=0.0) <= 1e-6
        assert batched.mean == pytest.approx(serial.mean, abs=1e-6) and math.isnan(batched.per_sample[3])
    assert serial.mean > 1e-3
    zero = mean_kl_batched(tiny_model, prompts, generated, None)
    assert zero.mean == 0.0 and [len(v) for v in zero.per_position] == [len(v) for v in serial.per_position]


def test_the_batched_path_refuses_what_the_serial_one_refuses(tiny_llama):
    for prompts, continuations_ in ((PROMPTS, ([1, 2],)), (PROMPTS[:1], ([10**9],)), (PROMPTS[:1], ((),))):
        with pytest.raises(InputError) as serial:
            mean_kl(tiny_llama, prompts, continuations_, None)
        with pytest.raises(InputError) as batched:
            mean_kl_batched(tiny_llama, prompts, continuations_, None)
        assert str(serial.value) == str(batched.value)


def test_evaluations_and_sweeps_show_the_kl_of_their_steered_samples(tiny_llama):
    vector = make(tiny_llama, layers=(1,), scale=0.7)
    options = {"prompts": MIXED[:3], "n_samples": 2, "max_new_tokens": 5, "seed": 2}
    evaluation = evaluate(tiny_llama, vector, 1, 1.5, SCORERS["sentiment"], **options)
    hooks = steering_hooks(tiny_llama, vector, 1.5, layers=[1])
    grouped = generate_batch(tiny_llama, list(MIXED[:3]), max_new_tokens=5, n_samples=2, temperature=0.8, seed=2, hooks=hooks)
    samples = [g for group in grouped for g in group]
    assert tuple(g.text for g in samples) == evaluation.steered.texts
    serial = mean_kl(tiny_llama, [g.prompt_token_ids for g in samples], [g.token_ids for g in samples], hooks)
    np.testing.assert_allclose(evaluation.steered.kl, serial.per_sample, atol=1e-6)
    assert evaluation.kl == pytest.approx(serial.mean, abs=1e-6) and evaluation.kl > 1e-3
    assert evaluation.unsteered.mean_kl == 0.0 and (evaluation.unsteered.kl == 0.0).all()
    assert evaluation.to_frame()["kl_steered"].tolist() == evaluation.steered.kl.tolist()
    in_steps = SteeringEvaluation(vector, layer=1, coefficient=1.5, **options).run(tiny_llama)
    np.testing.assert_array_equal(in_steps.steered.kl, evaluation.steered.kl)
    assert "mean KL" in batch_summary(in_steps, "compound")

    swept = sweep(tiny_llama, vector, SCORERS["sentiment"], layers=[1], coefficients=[0.0, 1.5], **options)
    kl = swept.grid("kl")
    assert kl.shape == (1, 2) and kl[0, 0] == 0.0 and kl[0, 1] == pytest.approx(evaluation.kl, abs=1e-9)
    assert swept.to_frame()["kl"].tolist() == kl[0].tolist()
    figure = sweep_heatmaps(swept)
    assert [t.colorbar.title.text for t in figure.data if isinstance(t, go.Heatmap)][-1] == "KL (nats)"
    assert "KL" in pareto_plot(swept).data[0].hovertemplate


def test_live_tuned_samples_show_the_same_kl(tiny_llama):
    spec = SteeringEvaluation(make(tiny_llama, layers=(1,), scale=0.7), layer=1, coefficient=1.5, prompts=MIXED[:2],
                              n_samples=2, max_new_tokens=4, seed=5)  # fmt: skip
    unsteered = UnsteeredSamples.of(spec).run(tiny_llama)
    live = start_steered(tiny_llama, spec).evaluation(tiny_llama, unsteered, timeout=60)
    direct = spec.run(tiny_llama)
    assert live.steered.texts == direct.steered.texts and unsteered.mean_kl == 0.0
    np.testing.assert_allclose(live.steered.kl, direct.steered.kl, atol=1e-9)


def test_a_sweep_kept_before_kl_loads_with_nan(tiny_llama):
    spec = SteeringSweep(make(tiny_llama, layers=(1,)), layers=(1,), coefficients=(1.0,), prompts=MIXED[:1], n_samples=1,
                         max_new_tokens=3)  # fmt: skip
    text, blob = dumps(spec.run(tiny_llama))
    document = json.loads(text)

    def strip(item):  # the record as an older Steerscope wrote it: no kl anywhere
        if isinstance(item, dict):
            return {k: strip(v) for k, v in item.items() if k != "kl"}
        return [strip(v) for v in item] if isinstance(item, list) else item

    old = loads(json.dumps(strip(document)), blob)
    assert "kl" in text and math.isnan(old.cells[0].kl) and old.baseline.kl is None and math.isnan(old.baseline.mean_kl)
    assert math.isnan(old.grid("kl")[0, 0]) and math.isnan(old.to_frame()["kl"][0])
    figure = sweep_heatmaps(old)  # no KL panel for a record that has none
    assert len([t for t in figure.data if isinstance(t, go.Heatmap)]) == 2
