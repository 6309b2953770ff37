"""The one hook context: names, cleanup on every failure path, locking across threads."""

from __future__ import annotations

import threading

import pytest
import torch

from interp import HookError, generate, intervene, load_model
from interp.forward import run_logits
from interp.hooks import count_hooks, resolve_hook_point
from interp.tokens import as_batch, tokenize

PROMPT = "When Mary and John went to the store, John gave a drink to"


def _ids(model):
    return as_batch(tokenize(model, PROMPT), model)


def _add(vector: torch.Tensor):
    def hook(activation, site):
        return activation + vector

    return hook


def test_unknown_name_lists_close_matches_and_registers_nothing(tiny_llama):
    before = count_hooks(tiny_llama)
    with pytest.raises(HookError, match=r"blocks\.1\.hook_resid_pre"):
        with intervene(tiny_llama, {"blocks.1.hook_resid_pr": lambda a, s: a}):
            pass
    assert count_hooks(tiny_llama) == before == 0


def test_hooks_fire_and_are_counted(tiny_model):
    names = ["blocks.0.hook_resid_pre", "blocks.1.attn.hook_z", "blocks.1.attn.hook_pattern", "blocks.0.hook_mlp_out"]
    with intervene(tiny_model, {name: lambda a, s: None for name in names}) as run:
        run_logits(tiny_model, _ids(tiny_model))
        run_logits(tiny_model, _ids(tiny_model))
    assert {name: run.fired(name) for name in names} == {name: 2 for name in names}
    assert count_hooks(tiny_model) == 0


def test_activations_have_transformer_lens_layout(tiny_llama):
    shapes = {}

    def record(activation, site):
        shapes[site.name] = tuple(activation.shape)

    names = ["blocks.1.hook_resid_pre", "blocks.1.attn.hook_z", "blocks.1.attn.hook_pattern"]
    ids = _ids(tiny_llama)
    with intervene(tiny_llama, {name: record for name in names}):
        run_logits(tiny_llama, ids)
    pos = ids.shape[1]
    assert shapes == {
        "blocks.1.hook_resid_pre": (1, pos, 64),
        "blocks.1.attn.hook_z": (1, pos, 4, 16),
        "blocks.1.attn.hook_pattern": (1, 4, pos, pos),
    }


def test_exception_in_a_hook_leaves_no_hook_and_baseline_output(tiny_model):
    ids = _ids(tiny_model)
    baseline = run_logits(tiny_model, ids)

    def explode(activation, site):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with intervene(tiny_model, {"blocks.0.hook_resid_pre": _add(torch.ones(64)), "blocks.1.hook_resid_pre": explode}):
            run_logits(tiny_model, ids)
    assert count_hooks(tiny_model) == 0
    assert torch.equal(run_logits(tiny_model, ids), baseline)


def test_registration_failing_half_way_removes_what_was_added(tiny_llama, monkeypatch):
    second = resolve_hook_point(tiny_llama, "blocks.1.hook_resid_pre")

    def refuse(*args, **kwargs):
        raise RuntimeError("registration failed")

    monkeypatch.setattr(second, "register_forward_hook", refuse)
    with pytest.raises(RuntimeError, match="registration failed"):
        with intervene(
            tiny_llama,
            [("blocks.0.hook_resid_pre", _add(torch.ones(64))), ("blocks.1.hook_resid_pre", _add(torch.ones(64)))],
        ):
            pass
    monkeypatch.undo()
    assert count_hooks(tiny_llama) == 0


def test_keyboard_interrupt_leaves_no_hook(tiny_llama):
    with pytest.raises(KeyboardInterrupt):
        with intervene(tiny_llama, {"blocks.0.hook_resid_pre": _add(torch.ones(64))}):
            raise KeyboardInterrupt
    assert count_hooks(tiny_llama) == 0


def test_zero_vector_changes_nothing(tiny_model):
    ids = _ids(tiny_model)
    baseline = run_logits(tiny_model, ids)
    with intervene(tiny_model, {"blocks.1.hook_resid_pre": _add(torch.zeros(64))}) as run:
        steered = run_logits(tiny_model, ids)
    assert run.fired("blocks.1.hook_resid_pre") == 1
    assert (steered - baseline).abs().max().item() <= 1e-6


def test_lock_blocks_other_threads_for_the_whole_run(tiny_llama):
    """A plain run from another thread waits until the intervened run has finished."""
    ids = _ids(tiny_llama)
    baseline = run_logits(tiny_llama, ids)
    inside = threading.Event()
    release = threading.Event()
    other_result = {}

    def other_thread():
        inside.wait()
        other_result["logits"] = run_logits(tiny_llama, ids)

    thread = threading.Thread(target=other_thread)
    thread.start()
    with intervene(tiny_llama, {"blocks.0.hook_resid_pre": _add(torch.full((64,), 3.0))}):
        inside.set()
        thread.join(timeout=0.5)
        assert thread.is_alive(), "the other thread's forward pass ran while our hooks were attached"
        run_logits(tiny_llama, ids)
        release.set()
    thread.join(timeout=30)
    assert torch.equal(other_result["logits"], baseline)


@pytest.fixture(scope="module")
def eight_layer_llama(tmp_path_factory):
    from tests.checkpoints import save_tiny_llama

    return load_model(save_tiny_llama(tmp_path_factory.mktemp("eight"), n_layers=8), device="cpu")


def test_eight_threads_each_get_their_own_steered_output(eight_layer_llama):
    """Eight different vectors at eight different layers, concurrently: each run equals its sequential run."""
    model = eight_layer_llama
    generator = torch.Generator().manual_seed(0)
    settings = [(f"blocks.{i}.hook_resid_pre", torch.randn(64, generator=generator) * 2) for i in range(8)]

    def steered_text(name, vector):
        return generate(model, PROMPT, max_new_tokens=12, stop_at_eos=False, hooks={name: _add(vector)}).token_ids

    sequential = [steered_text(name, vector) for name, vector in settings]
    assert len(set(sequential)) > 1, "vectors too weak to tell the runs apart"
    concurrent: list = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        concurrent[i] = steered_text(*settings[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert concurrent == sequential
    assert count_hooks(model) == 0


def test_generation_hooks_see_absolute_positions(tiny_llama):
    seen = []

    def record(activation, site):
        seen.append(list(site.positions(activation.shape[1])))

    prompt_len = len(tokenize(tiny_llama, PROMPT))
    generate(tiny_llama, PROMPT, max_new_tokens=3, stop_at_eos=False, hooks={"blocks.0.hook_resid_pre": record})
    assert seen == [list(range(prompt_len)), [prompt_len], [prompt_len + 1]]
