"""Angular steering: a no-op at 0°, norms kept, the result in span(x, d̂), addition and ablation as special cases."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from interp import InputError, generate, intervene
from interp.forward import run_logits
from interp.hooks import count_hooks
from interp.tokens import as_batch, tokenize
from steering.angular import angular_hooks, rotate_toward
from tests.steering.test_vector import make

PROMPT = "When Mary and John went to the store, John gave a drink to"
LAYER = 1
NAME = f"blocks.{LAYER}.hook_resid_pre"


def captured_around(model, hooks, ids):
    """The activation at NAME before and after ``hooks`` (probes registered either side of them at the same point)."""
    seen = {}

    def before(activation, site):
        seen["before"] = activation.detach().clone()

    def after(activation, site):
        seen["after"] = activation.detach().clone()

    run_logits(model, ids, [(NAME, before), *hooks, (NAME, after)])
    return seen["before"].double(), seen["after"].double()


def unit(vector):
    direction = vector.direction(LAYER).double()
    return direction / direction.norm()


def cosine_with(x, direction):
    return (x @ direction) / x.norm(dim=-1)


def degrees_from(x, direction):
    """The angle between each row of x and a unit direction, by atan2 (accurate near 0° too)."""
    along = x @ direction
    across = (x - along[..., None] * direction).norm(dim=-1)
    return torch.rad2deg(torch.atan2(across, along))


def test_angle_zero_changes_no_logit(tiny_model):
    ids = as_batch(tokenize(tiny_model, PROMPT), tiny_model)
    vector = make(tiny_model, layers=(0, 1), scale=3.0)
    plain = run_logits(tiny_model, ids)
    with intervene(tiny_model, angular_hooks(tiny_model, vector, 0.0)) as run:
        rotated = run_logits(tiny_model, ids)
    assert run.fired("blocks.0.hook_resid_pre") == 1 and run.fired(NAME) == 1
    assert torch.equal(plain, rotated)
    baseline = generate(tiny_model, PROMPT, max_new_tokens=8, stop_at_eos=False)
    steered = generate(tiny_model, PROMPT, max_new_tokens=8, stop_at_eos=False, hooks=angular_hooks(tiny_model, vector, 0.0))
    assert steered.token_ids == baseline.token_ids
    assert count_hooks(tiny_model) == 0


@pytest.mark.parametrize(("angle", "mode"), [(30.0, "toward"), (-50.0, "toward"), (180.0, "toward"), (60.0, "absolute")])
def test_rotation_keeps_every_norm_and_stays_in_the_plane_of_x_and_the_direction(tiny_llama, angle, mode):
    ids = as_batch(tokenize(tiny_llama, PROMPT), tiny_llama)
    vector = make(tiny_llama, layers=(LAYER,), scale=2.0)
    before, after = captured_around(tiny_llama, angular_hooks(tiny_llama, vector, angle, mode=mode), ids)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after.norm(dim=-1), before.norm(dim=-1), rtol=1e-5, atol=0)
    # least squares on the basis [x, d̂] per position: the rotated activation has no part outside it
    d = unit(vector)
    for x, y in zip(before[0], after[0], strict=True):
        basis = torch.stack([x, d], dim=1)  # [d_model, 2]
        coefficients = torch.linalg.lstsq(basis, y[:, None]).solution
        residual = (y[:, None] - basis @ coefficients).norm()
        assert float(residual) < 1e-5 * float(y.norm())


def test_toward_mode_turns_by_the_angle_and_stops_at_the_direction(tiny_llama):
    ids = as_batch(tokenize(tiny_llama, PROMPT), tiny_llama)
    vector = make(tiny_llama, layers=(LAYER,), scale=2.0)
    d = unit(vector)
    before, after = captured_around(tiny_llama, angular_hooks(tiny_llama, vector, 20.0), ids)
    expected = (degrees_from(before[0], d) - 20.0).clamp_min(0.0)
    torch.testing.assert_close(degrees_from(after[0], d), expected, atol=1e-3, rtol=0)
    _, onto = captured_around(tiny_llama, angular_hooks(tiny_llama, vector, 180.0), ids)
    torch.testing.assert_close(cosine_with(onto[0], d), torch.ones(onto.shape[1], dtype=torch.float64), atol=1e-6, rtol=0)
    _, away = captured_around(tiny_llama, angular_hooks(tiny_llama, vector, -180.0), ids)
    torch.testing.assert_close(cosine_with(away[0], d), -torch.ones(away.shape[1], dtype=torch.float64), atol=1e-6, rtol=0)


def test_a_larger_angle_brings_the_residual_closer_to_the_direction(tiny_model):
    """At every position the cosine with d̂ grows with the angle and reaches 1 once the angle passes φ."""
    ids = as_batch(tokenize(tiny_model, PROMPT), tiny_model)
    vector = make(tiny_model, layers=(LAYER,), scale=2.0)
    d = unit(vector)
    cosines = []
    for angle in (0.0, 15.0, 45.0, 90.0, 180.0):
        _, after = captured_around(tiny_model, angular_hooks(tiny_model, vector, angle), ids)
        cosines.append(cosine_with(after[0], d))
    for lower, higher in itertools.pairwise(cosines):
        assert bool((higher > lower - 1e-6).all()) and bool((higher > lower + 1e-3).any())
    torch.testing.assert_close(cosines[-1], torch.ones_like(cosines[-1]), atol=1e-6, rtol=0)


def test_absolute_ninety_degrees_is_the_normalised_directional_ablation(tiny_model):
    ids = as_batch(tokenize(tiny_model, PROMPT), tiny_model)
    vector = make(tiny_model, layers=(LAYER,), scale=2.0)
    before, after = captured_around(tiny_model, angular_hooks(tiny_model, vector, 90.0, mode="absolute"), ids)
    d = unit(vector)
    ablated = before - (before @ d)[..., None] * d  # x − (x·d̂)d̂
    torch.testing.assert_close(
        after / after.norm(dim=-1, keepdim=True), ablated / ablated.norm(dim=-1, keepdim=True), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(after.norm(dim=-1), before.norm(dim=-1), rtol=1e-5, atol=0)
    assert float((after @ d).abs().max()) < 1e-4 * float(after.norm(dim=-1).min())


def test_addition_is_a_rotation_followed_by_a_rescaling():
    """x + c·d̂ = (‖x + c·d̂‖ / ‖x‖) · rotation of x toward d̂ by φ − atan2(b, a + c), per position."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 16, generator=generator, dtype=torch.float64)
    direction = torch.randn(16, generator=generator, dtype=torch.float64)
    d = direction / direction.norm()
    for c in (0.5, 3.0, -2.0):
        added = x + c * d
        a = (x @ d)[..., None]
        b = (x - a * d).norm(dim=-1, keepdim=True)
        turn = torch.atan2(b, a) - torch.atan2(b, a + c)  # from the angle x has to the angle x + c·d̂ has
        rotated = rotate_toward(x, direction, turn)
        rescaled = rotated * (added.norm(dim=-1, keepdim=True) / x.norm(dim=-1, keepdim=True))
        torch.testing.assert_close(rescaled, added, atol=1e-10, rtol=1e-10)
    # and the full turn (θ ≥ φ) is where x + c·d̂ points as c grows, at x's own norm
    onto = rotate_toward(x, direction, math.pi)
    far = x + 1e9 * d
    torch.testing.assert_close(onto, far / far.norm(dim=-1, keepdim=True) * x.norm(dim=-1, keepdim=True), atol=1e-7, rtol=0)


def test_zero_and_parallel_activations_are_left_as_they_are():
    d = torch.tensor([0.0, 2.0, 0.0])
    x = torch.tensor([[0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, -1.0, 0.0], [1.0, 1.0, 0.0]])
    for mode, angle in (("toward", 1.0), ("toward", -1.0), ("absolute", 1.0)):
        out = rotate_toward(x, d, angle, mode=mode)
        assert torch.isfinite(out).all()
        assert torch.equal(out[:3], x[:3])
        torch.testing.assert_close(out[3].norm(), x[3].norm())
    bf16 = rotate_toward(x.bfloat16(), d, math.pi / 4)  # computed in float32, handed back in the activation's dtype
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16[3].float(), torch.tensor([0.0, math.sqrt(2), 0.0]), atol=1e-2, rtol=0)


def test_positions_choose_the_passes_that_are_rotated(tiny_llama):
    vector = make(tiny_llama, layers=(LAYER,), scale=2.0)
    steps = {}
    for mode in ("plain", "prompt", "generated"):
        seen = []

        def probe(activation, site, seen=seen):
            seen.append(activation.detach().clone())

        hooks = [] if mode == "plain" else angular_hooks(tiny_llama, vector, 60.0, positions=mode)
        with intervene(tiny_llama, [*hooks, (NAME, probe)]):  # this thread decodes: the probe sees every pass
            generate(tiny_llama, PROMPT, max_new_tokens=3, stop_at_eos=False)
        steps[mode] = seen
    assert not torch.equal(steps["prompt"][0], steps["plain"][0])
    assert torch.equal(steps["generated"][0], steps["plain"][0])
    assert not torch.allclose(steps["generated"][1], steps["plain"][1])


def test_engine_and_serial_decoding_give_the_same_rotated_text(tiny_model):
    vector = make(tiny_model, layers=(0, 1), scale=2.0)
    hooks = angular_hooks(tiny_model, vector, 90.0)
    through_engine = generate(tiny_model, PROMPT, max_new_tokens=10, stop_at_eos=False, hooks=hooks)
    with intervene(tiny_model, hooks):
        serial = generate(tiny_model, PROMPT, max_new_tokens=10, stop_at_eos=False)
    assert through_engine.token_ids == serial.token_ids
    plain = generate(tiny_model, PROMPT, max_new_tokens=10, stop_at_eos=False)
    assert through_engine.token_ids != plain.token_ids
    assert count_hooks(tiny_model) == 0


@pytest.mark.parametrize(
    ("angle", "options", "message"),
    [
        (math.nan, {}, "finite"),
        (math.inf, {}, "finite"),
        (200.0, {}, "at most 180"),
        (-10.0, {"mode": "absolute"}, "at least 0"),
        (10.0, {"mode": "sideways"}, "angle mode"),
        (10.0, {"positions": "middle"}, "positions"),
        (10.0, {"layers": [0]}, "no direction at layer"),
    ],
)
def test_bad_settings_are_input_errors(tiny_llama, angle, options, message):
    vector = make(tiny_llama, layers=(LAYER,))
    with pytest.raises(InputError, match=message):
        angular_hooks(tiny_llama, vector, angle, **options)


def test_a_zero_direction_is_an_input_error(tiny_llama):
    with pytest.raises(InputError, match="zero"):
        angular_hooks(tiny_llama, make(tiny_llama, layers=(LAYER,)) * 0.0, 30.0)
