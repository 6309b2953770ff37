"""The engine on tiny models: batched equals solo, requests join and leave mid-decode, cancel, fail alone, and
long jobs take turns with generation. The reference for every output is the serial path that decodes in the
caller's thread (interp.generation.generate_batch_serial, which equals Hugging Face ``generate``: test_generation.py
checks both paths against HF)."""

from __future__ import annotations

import itertools
import time

import pytest
import torch

from interp.engine import Engine, GenerationRequest, RowAddition
from interp.errors import HookError, InputError
from interp.generation import SamplingSettings, generate_batch_serial
from interp.hooks import count_hooks
from interp.tokens import tokenize

PROMPTS = ("Hello there", "The cat sat on the mat and then", "A")


def solo_hooks(additions: tuple[RowAddition, ...]):
    """The same additions for the solo path: its prompt pass starts at position 0, decode steps later."""

    def adder(addition: RowAddition):
        def add(activation, site):
            if addition.positions == "prompt" and site.position_offset > 0:
                return None
            if addition.positions == "generated" and site.position_offset == 0:
                return None
            return activation + addition.delta.to(activation.dtype)

        return add

    return [(a.hook_name, adder(a)) for a in additions]


def request(model, prompt: str, *, tokens: int = 12, samples: int = 1, temperature: float = 0.0, seed: int = 0, additions=()):
    return GenerationRequest(
        prompt, tuple(tokenize(model, prompt)), max_new_tokens=tokens, n_samples=samples,
        sampling=SamplingSettings(temperature), seed=seed, stop_at_eos=False, additions=tuple(additions),
    )  # fmt: skip


def solo(model, req: GenerationRequest) -> list[tuple[int, ...]]:
    samples = generate_batch_serial(
        model, [req.prompt], max_new_tokens=req.max_new_tokens, n_samples=req.n_samples,
        temperature=req.sampling.temperature, seed=req.seed, stop_at_eos=req.stop_at_eos, hooks=solo_hooks(req.additions),
    )[0]  # fmt: skip
    return [s.token_ids for s in samples]


def additions(model, seed: int, layer: int, positions: str = "all", scale: float = 4.0) -> tuple[RowAddition, ...]:
    delta = scale * torch.randn(model.info.d_model, generator=torch.Generator().manual_seed(seed))
    return (RowAddition(f"blocks.{layer}.hook_resid_pre", delta, positions),)


@pytest.fixture()
def engine(tiny_model):
    engine = Engine(tiny_model)
    yield engine
    engine.close()
    assert count_hooks(tiny_model) == 0


def test_mixed_requests_batched_together_equal_their_solo_runs(tiny_model, engine):
    model = tiny_model
    reqs = [
        request(model, PROMPTS[0]),
        request(model, PROMPTS[1], samples=2, additions=additions(model, 1, 1)),
        request(model, PROMPTS[2], additions=additions(model, 2, 0, "generated")),
        request(model, PROMPTS[0], additions=additions(model, 3, 1, "prompt")),
    ]
    streams = [engine.submit(r) for r in reqs]
    for req, stream in zip(reqs, streams, strict=True):
        assert [g.token_ids for g in stream.result(timeout=60)] == solo(model, req)
    plain, steered = streams[0].result()[0].token_ids, streams[3].result()[0].token_ids
    assert plain != steered, "the steered request must differ from the plain one on the same prompt"


def test_sampled_requests_give_the_same_text_as_alone_with_the_same_seeds(tiny_model, engine):
    model = tiny_model
    reqs = [
        request(model, PROMPTS[1], samples=3, temperature=0.9, seed=7, additions=additions(model, 4, 1)),
        request(model, PROMPTS[0], samples=2, temperature=0.7, seed=11),
    ]
    streams = [engine.submit(r) for r in reqs]
    for req, stream in zip(reqs, streams, strict=True):
        generations = stream.result(timeout=60)
        assert [g.token_ids for g in generations] == solo(model, req)
        assert [g.seed for g in generations] == [req.seed + i for i in range(req.n_samples)]


def test_a_request_joining_mid_decode_changes_nothing_for_either(tiny_model, engine):
    model = tiny_model
    first = request(model, PROMPTS[1], tokens=24, additions=additions(model, 5, 1))
    second = request(model, PROMPTS[2], tokens=6, samples=2)
    stream = engine.submit(first)
    events = stream.events(timeout=60)
    for _ in range(3):  # the first request is decoding when the second arrives
        next(events)
    late = engine.submit(second)
    assert [g.token_ids for g in late.result(timeout=60)] == solo(model, second)
    assert not stream.done or len(stream.result()[0].token_ids) == 24
    assert [g.token_ids for g in stream.result(timeout=60)] == solo(model, first)


def test_tokens_stream_in_order_and_spell_the_final_text(tiny_llama):
    engine = Engine(tiny_llama)
    try:
        stream = engine.submit(request(tiny_llama, PROMPTS[0], tokens=8, samples=2))
        seen: dict[int, list[int]] = {0: [], 1: []}
        last_text = {}
        for event in stream.events(timeout=60):
            seen[event.sample].append(event.token_id)
            last_text[event.sample] = event.text_so_far
        generations = stream.result()
        assert [tuple(seen[i]) for i in (0, 1)] == [g.token_ids for g in generations]
        assert [last_text[i] for i in (0, 1)] == [g.text for g in generations]
        assert stream.first_token_seconds is not None and stream.first_token_seconds <= generations[0].seconds
    finally:
        engine.close()


def test_a_cancelled_request_leaves_at_the_next_step_and_its_neighbour_goes_on(tiny_model, engine):
    model = tiny_model
    long = request(model, PROMPTS[1], tokens=200)
    neighbour = request(model, PROMPTS[0], tokens=30, additions=additions(model, 6, 1))
    stream, other = engine.submit(long), engine.submit(neighbour)
    next(stream.events(timeout=60))
    stream.cancel()
    generations = stream.result(timeout=60)
    assert generations[0].finish_reason == "cancelled"
    assert len(generations[0].token_ids) < 200
    assert [g.token_ids for g in other.result(timeout=60)] == solo(model, neighbour)


def test_a_failing_request_fails_alone_and_leaves_no_hook(tiny_model, engine):
    model = tiny_model
    good = request(model, PROMPTS[1], tokens=10, additions=additions(model, 7, 1))
    bad = GenerationRequest(
        PROMPTS[0], tuple(tokenize(model, PROMPTS[0])), max_new_tokens=10, stop_at_eos=False,
        additions=(RowAddition("blocks.99.hook_resid_pre", torch.zeros(model.info.d_model)),),
    )  # fmt: skip
    streams = [engine.submit(good), engine.submit(bad)]
    with pytest.raises(HookError, match="blocks.99"):
        streams[1].result(timeout=60)
    assert [g.token_ids for g in streams[0].result(timeout=60)] == solo(model, good)
    assert count_hooks(model) == 0


def test_long_jobs_take_turns_with_generation(tiny_llama):
    engine = Engine(tiny_llama)
    steps_at_chunk: list[int] = []

    def chunks():
        for i in range(6):
            steps_at_chunk.append(engine.status().steps)
            time.sleep(0.01)
            yield (i + 1) / 6
        return "done"

    try:
        stream = engine.submit(request(tiny_llama, PROMPTS[1], tokens=20))
        job = engine.submit_job("patching sweep", chunks())
        assert job.result(timeout=60) == "done"
        stream.result(timeout=60)
        # every chunk after the first ran after more decode steps: the job never held the model for two chunks
        # while the generation waited
        assert all(b > a for a, b in itertools.pairwise(steps_at_chunk)), steps_at_chunk
    finally:
        engine.close()


def test_a_failing_job_reports_its_error_and_a_cancelled_one_stops(tiny_llama):
    engine = Engine(tiny_llama)

    def failing():
        yield 0.5
        raise ValueError("chunk 2 broke")

    def endless():
        while True:
            yield 0.0

    try:
        with pytest.raises(ValueError, match="chunk 2 broke"):
            engine.submit_job("failing", failing()).result(timeout=30)
        job = engine.submit_job("endless", endless())
        job.cancel()
        with pytest.raises(Exception, match="was stopped"):
            job.result(timeout=30)
        assert engine.status().describe() == "Engine idle"
    finally:
        engine.close()


def test_the_status_line_says_what_runs(tiny_llama):
    engine = Engine(tiny_llama)
    try:
        stream = engine.submit(
            GenerationRequest(PROMPTS[0], tuple(tokenize(tiny_llama, PROMPTS[0])), max_new_tokens=200, stop_at_eos=False,
                              label="Steering samples")
        )  # fmt: skip
        next(stream.events(timeout=60))
        status = engine.status()
        assert status.requests == ("Steering samples",) and status.rows == 1
        assert "1 generation decoding (1 row)" in status.describe()
        stream.cancel()
        stream.result(timeout=60)
    finally:
        engine.close()


def test_a_closed_engine_refuses_new_work_clearly(tiny_llama):
    engine = Engine(tiny_llama)
    engine.close()
    with pytest.raises(Exception, match="engine was closed"):
        engine.submit(request(tiny_llama, PROMPTS[0]))


def zero_head_0(activation, site):
    """An ablation: zero head 0's output at every position (any intervention, not only an addition)."""
    out = activation.clone()
    out[:, :, 0] *= 0.0
    return out


def test_a_request_with_its_own_hook_functions_equals_its_solo_run(tiny_model, engine):
    model = tiny_model
    hooked = GenerationRequest(
        PROMPTS[1], tuple(tokenize(model, PROMPTS[1])), max_new_tokens=10, n_samples=2, stop_at_eos=False,
        hooks=(("blocks.1.attn.hook_z", zero_head_0),),
    )  # fmt: skip
    plain = request(model, PROMPTS[0], tokens=10)
    streams = [engine.submit(plain), engine.submit(hooked)]
    expected = generate_batch_serial(
        model, [PROMPTS[1]], max_new_tokens=10, n_samples=2, temperature=0.0, stop_at_eos=False,
        hooks=[("blocks.1.attn.hook_z", zero_head_0)],
    )[0]  # fmt: skip
    assert [g.token_ids for g in streams[1].result(timeout=60)] == [g.token_ids for g in expected]
    assert [g.token_ids for g in streams[0].result(timeout=60)] == solo(model, plain)


def test_a_hook_that_raises_mid_decode_fails_its_request_only(tiny_model, engine):
    model = tiny_model
    calls = {"n": 0}

    def breaks_on_third_step(activation, site):
        calls["n"] += 1
        if site.position_offset > 0 and calls["n"] >= 3:
            raise RuntimeError("hook broke at a decode step")
        return None

    bad = GenerationRequest(
        PROMPTS[0], tuple(tokenize(model, PROMPTS[0])), max_new_tokens=20, stop_at_eos=False,
        hooks=(("blocks.0.hook_resid_pre", breaks_on_third_step),),
    )  # fmt: skip
    good = request(model, PROMPTS[1], tokens=20, additions=additions(model, 8, 1))
    streams = [engine.submit(good), engine.submit(bad)]
    with pytest.raises(RuntimeError, match="hook broke"):
        streams[1].result(timeout=60)
    assert [g.token_ids for g in streams[0].result(timeout=60)] == solo(model, good)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_request_whose_steering_overflows_fails_alone_and_the_engine_keeps_serving(tiny_model, engine, temperature):
    """Finite but huge additions push the residual stream to infinity and the logits to NaN (a sampled choice then
    fails inside multinomial). That request ends with a message saying what to change; its batch neighbour and every
    later request are served as if it never came (the engine's thread does not die)."""
    model = tiny_model
    huge = torch.full((model.info.d_model,), 3e38)
    overflow = tuple(RowAddition(f"blocks.{layer}.hook_resid_pre", huge, "generated") for layer in (0, 1))
    bad = request(model, PROMPTS[0], tokens=10, temperature=temperature, seed=3, additions=overflow)
    good = request(model, PROMPTS[1], tokens=10, temperature=temperature, seed=5, additions=additions(model, 9, 1))
    streams = [engine.submit(good), engine.submit(bad)]
    with pytest.raises(InputError, match="NaN or infinite.*lower the steering coefficient"):
        streams[1].result(timeout=60)
    assert [g.token_ids for g in streams[0].result(timeout=60)] == solo(model, good)
    later = request(model, PROMPTS[2], tokens=6, temperature=temperature, seed=7)
    assert [g.token_ids for g in engine.submit(later).result(timeout=60)] == solo(model, later)


def test_generate_batch_from_many_threads_equals_the_serial_path(tiny_llama):
    """What sessions do: several threads call generate_batch at once; the engine batches them."""
    import threading

    from interp.generation import generate_batch

    model = tiny_llama
    jobs = [(PROMPTS[i % 3], i) for i in range(6)]
    results: dict[int, list] = {}

    def call(prompt: str, seed: int) -> None:
        results[seed] = generate_batch(model, [prompt], max_new_tokens=8, n_samples=2, temperature=0.8, seed=seed)

    threads = [threading.Thread(target=call, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for prompt, seed in jobs:
        expected = generate_batch_serial(model, [prompt], max_new_tokens=8, n_samples=2, temperature=0.8, seed=seed)
        assert [g.token_ids for g in results[seed][0]] == [g.token_ids for g in expected[0]]
    assert count_hooks(model) == 0


def test_samples_that_end_at_different_steps_all_come_back(tiny_model, engine):
    """One sample reaching end-of-text leaves the batch early; its request still gets every sample, as alone."""
    model = tiny_model
    free = generate_batch_serial(model, [PROMPTS[1]], max_new_tokens=16, n_samples=4, temperature=1.0, seed=3,
                                 stop_at_eos=False)[0]  # fmt: skip
    eos = free[0].token_ids[4]  # a token sample 0 writes early: made end-of-text, it ends rows at different steps
    original = model.tokenizer.eos_token
    model.tokenizer.eos_token = model.tokenizer.convert_ids_to_tokens(eos)
    try:
        assert model.tokenizer.eos_token_id == eos
        check_samples_that_end_early(model, engine)
    finally:
        model.tokenizer.eos_token = original


def check_samples_that_end_early(model, engine) -> None:
    req = GenerationRequest(PROMPTS[1], tuple(tokenize(model, PROMPTS[1])), max_new_tokens=16, n_samples=4,
                            sampling=SamplingSettings(1.0), seed=3)  # fmt: skip
    expected = generate_batch_serial(model, [PROMPTS[1]], max_new_tokens=16, n_samples=4, temperature=1.0, seed=3)[0]
    lengths = {len(g.token_ids) for g in expected}
    assert len(lengths) > 1, "the samples must end at different steps for this test to mean anything"
    got = engine.submit(req).result(timeout=60)
    assert [g.token_ids for g in got] == [g.token_ids for g in expected]
    assert [g.finish_reason for g in got] == [g.finish_reason for g in expected]
