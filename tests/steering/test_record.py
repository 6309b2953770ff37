"""Recording while steering: the activations equal a teacher-forced steered pass over the generated text, differ from
the unsteered pass, see the steering addition at the steered point, and cost no pass beyond generation's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import InputError, generate, intervene
from interp.activations import record
from interp.hooks import count_hooks
from steering.apply import steer, steering_hooks
from steering.record import SteeredRecording, record_steered
from tests.steering.test_vector import make

PROMPT = "When Mary and John went to the store"
LAYER = 1


def teacher_forced(model, recording, hooks=None):
    """The reference: one uncached pass over prompt + the continuation's read tokens, captured by interp.record."""
    ids = [*recording.prompt_token_ids, *recording.token_ids[:-1]]
    names = list(recording.names)
    if hooks is None:
        captured = record(model, torch.tensor([ids]), names)
    else:
        with steer(model, *hooks):
            captured = record(model, torch.tensor([ids]), names)
    return {name: captured.activations[name][0].float().numpy() for name in names}


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_recorded_activations_are_the_steered_runs(tiny_model, positions):
    vector = make(tiny_model, layers=(LAYER,), scale=2.0)
    recording = record_steered(tiny_model, PROMPT, vector, 1.5, [LAYER], max_new_tokens=6, positions=positions)
    assert isinstance(recording, SteeredRecording)
    assert recording.names == tuple(f"blocks.{la}.hook_resid_pre" for la in range(tiny_model.info.n_layers))
    steered_text = generate(
        tiny_model, PROMPT, max_new_tokens=6, hooks=steering_hooks(tiny_model, vector, 1.5, positions=positions)
    )
    assert recording.token_ids == steered_text.token_ids and recording.text == steered_text.text
    n_positions = len(recording.prompt_token_ids) + len(recording.token_ids) - 1
    assert len(recording.tokens) == n_positions
    plain = teacher_forced(tiny_model, recording)
    name = f"blocks.{LAYER}.hook_resid_pre"
    if positions == "all":
        reference = teacher_forced(tiny_model, recording, (vector, 1.5))
        for point in recording.names:
            assert recording.activations[point].shape == (n_positions, tiny_model.info.d_model)
            np.testing.assert_allclose(recording.activations[point], reference[point], atol=1e-4, rtol=1e-4)
        # the capture saw the activation after the addition: the unsteered input to the steered layer plus c·d
        added = plain[name] + 1.5 * vector.direction(LAYER).numpy()
        np.testing.assert_allclose(recording.activations[name], added, atol=1e-4, rtol=1e-4)
    else:  # generated positions only: the prompt's rows are the unsteered ones, every generated row has the addition
        prompt_rows = slice(0, recording.n_prompt)
        np.testing.assert_allclose(recording.activations[name][prompt_rows], plain[name][prompt_rows], atol=1e-4, rtol=1e-4)
        assert not np.allclose(recording.activations[name][recording.n_prompt :], plain[name][recording.n_prompt :], atol=1e-2)
    assert not np.allclose(recording.activations[name], plain[name], atol=1e-2)
    assert np.allclose(recording.activations["blocks.0.hook_resid_pre"], plain["blocks.0.hook_resid_pre"], atol=1e-4)  # upstream


def test_projections_and_norms_are_of_the_recorded_activations(tiny_llama):
    a, b = make(tiny_llama, layers=(0, 1), seed=1, scale=2.0), make(tiny_llama, layers=(1,), seed=2)
    recording = record_steered(tiny_llama, PROMPT, [a, b], [1.0, 2.0], max_new_tokens=4)
    assert recording.steered_layers == ((0, 1), (1,)) and recording.coefficients == (1.0, 2.0)
    for name in recording.names:
        layer = int(name.split(".")[1])
        values = recording.activations[name].astype(np.float64)
        np.testing.assert_allclose(recording.norms[name], np.linalg.norm(values, axis=-1), rtol=1e-5)
        unit_a = a.direction(layer).double().numpy()
        unit_b = b.direction(1).double().numpy()  # b has no direction at layer 0: its steered layer's is used
        assert recording.projections[name].shape == (2, values.shape[0])
        np.testing.assert_allclose(
            recording.projection(name, 0), values @ (unit_a / np.linalg.norm(unit_a)), rtol=1e-4, atol=1e-4
        )
        np.testing.assert_allclose(
            recording.projection(name, 1), values @ (unit_b / np.linalg.norm(unit_b)), rtol=1e-4, atol=1e-4
        )


def test_the_recording_rides_on_generations_own_passes(tiny_llama):
    vector = make(tiny_llama, layers=(LAYER,), scale=2.0)
    calls = []

    def counting(activation, site):
        calls.append(site.position_offset)

    recording = record_steered(tiny_llama, PROMPT, vector, 1.0, names=["blocks.0.hook_resid_pre"], max_new_tokens=5)
    with steer(tiny_llama, vector, 1.0), intervene(tiny_llama, {"blocks.0.hook_resid_pre": counting}):
        plain_run = generate(tiny_llama, PROMPT, max_new_tokens=5)
    assert plain_run.token_ids == recording.token_ids
    # generation alone makes one pass per chosen token; the recording counted exactly those passes, no more
    assert recording.forward_passes == len(calls) == len(recording.token_ids) == 5
    assert calls[0] == 0 and calls[1:] == list(range(len(recording.prompt_token_ids), len(recording.prompt_token_ids) + 4))
    assert count_hooks(tiny_llama) == 0


def test_bad_hook_points_are_input_errors(tiny_llama):
    vector = make(tiny_llama, layers=(LAYER,))
    with pytest.raises(Exception, match="No hook point named"):
        record_steered(tiny_llama, PROMPT, vector, 1.0, names=["blocks.0.hook_nonsense"], max_new_tokens=2)
    with pytest.raises(InputError, match="d_model"):
        record_steered(tiny_llama, PROMPT, vector, 1.0, names=["blocks.0.attn.hook_pattern"], max_new_tokens=2)
    with pytest.raises(InputError, match="at least one hook point"):
        record_steered(tiny_llama, PROMPT, vector, 1.0, names=[], max_new_tokens=2)
    assert count_hooks(tiny_llama) == 0
