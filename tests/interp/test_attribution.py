"""Attribution: the axioms each method promises, a planted answer, sanity checks, hygiene."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import torch

from interp import InputError, intervene, load_model
from interp.attribution import (
    METHODS,
    AttributionMethod,
    AttributionRun,
    CheckedAttribution,
    FeatureAblation,
    GradientXInput,
    IntegratedGradients,
    MethodComparison,
    MethodScores,
    ShapleySampling,
    Target,
    attribute,
    estimate_evaluations,
    faithfulness,
    faithfulness_evaluations,
    method_of,
    rank_agreement,
)
from interp.loading import load_hf_model
from interp.tokens import baseline_token_id, tokenize
from tests.checkpoints import FIRST_TOKEN_LENGTH, save_tiny_llama, save_trained_first_token_llama

IOI = "When Mary and John went to the store, John gave a drink to"


def all_hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.bridge.modules())


@pytest.fixture(scope="module")
def first_token_model(tmp_path_factory):
    return load_model(save_trained_first_token_llama(tmp_path_factory.mktemp("first-token")), device="cpu")


@pytest.fixture(scope="module")
def first_token_prompts(first_token_model):
    """Prompts of the trained task written as text that tokenises back to the same ids."""
    generator = torch.Generator().manual_seed(1)
    prompts = []
    while len(prompts) < 4:
        ids = torch.randint(10, 60, (FIRST_TOKEN_LENGTH,), generator=generator).tolist()
        text = first_token_model.tokenizer.decode(ids)
        if tokenize(first_token_model, text) == ids and len(set(ids)) == len(ids):
            prompts.append(text)
    return prompts


def _hf_log_probs(model, ids: list[int]) -> torch.Tensor:
    reference, _ = load_hf_model(model.folder)
    with torch.no_grad():
        return torch.log_softmax(reference(torch.tensor([ids])).logits[0].float(), -1)


# --- targets against an independent reference --------------------------------------------


def test_next_token_target_is_the_hf_log_probability(tiny_model):
    result = attribute(tiny_model, IOI, Target.next_token(" Mary"), "gradient_x_input")
    ids = tokenize(tiny_model, IOI)
    mary = tiny_model.tokenizer(" Mary", add_special_tokens=False).input_ids[0]
    assert result.target_value == pytest.approx(_hf_log_probs(tiny_model, ids)[-1, mary].item(), abs=1e-4)


def test_continuation_target_sums_hf_log_probabilities(tiny_llama):
    result = attribute(tiny_llama, "When Mary and John went to the", Target.continuation(" store, John"), "feature_ablation")
    prompt = tokenize(tiny_llama, "When Mary and John went to the")
    suffix = tiny_llama.tokenizer(" store, John", add_special_tokens=False).input_ids
    log_probs = _hf_log_probs(tiny_llama, prompt + suffix)
    expected = sum(log_probs[len(prompt) - 1 + j, t].item() for j, t in enumerate(suffix))
    assert result.target_value == pytest.approx(expected, abs=1e-4)
    assert len(result.scores) == len(prompt)  # continuation tokens are not attributed


def test_contrast_target_is_a_logit_difference(tiny_llama):
    result = attribute(tiny_llama, IOI, Target.contrast(" Mary", " John"), "gradient_x_input")
    reference, tokenizer = load_hf_model(tiny_llama.folder)
    with torch.no_grad():
        logits = reference(torch.tensor([tokenize(tiny_llama, IOI)])).logits[0, -1]
    mary, john = (tokenizer(t, add_special_tokens=False).input_ids[0] for t in (" Mary", " John"))
    assert result.target_value == pytest.approx((logits[mary] - logits[john]).item(), abs=1e-4)


# --- the axioms ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [Target.next_token(), Target.contrast(" Mary", " John")])
def test_shap_values_add_up_to_the_target(tiny_model, target):
    result = attribute(tiny_model, IOI, target, "shap", max_evals=200)
    assert result.base_value is not None
    total = result.base_value + result.scores.sum()
    assert abs(total - result.target_value) <= 1e-4 * max(1.0, abs(result.target_value))


def test_shap_masks_tokens_as_the_other_methods_do(tiny_llama):
    """SHAP's "everything removed" value is the target on the all-baseline prompt of the same length, as in Captum."""
    result = attribute(tiny_llama, IOI, Target.contrast(" Mary", " John"), "shap", max_evals=60)
    ids = tokenize(tiny_llama, IOI)
    masked = [baseline_token_id(tiny_llama)] * len(ids)
    mary, john = (tiny_llama.tokenizer(t, add_special_tokens=False).input_ids[0] for t in (" Mary", " John"))
    reference, _ = load_hf_model(tiny_llama.folder)
    with torch.no_grad():
        logits = reference(torch.tensor([masked])).logits[0, -1]
    assert result.base_value == pytest.approx((logits[mary] - logits[john]).item(), abs=1e-4)


@pytest.fixture(scope="module")
def smooth_tiny_llama(tmp_path_factory):
    """A tiny Llama at Hugging Face's own init scale (the 8x-scaled fixture is too sharp for IG to converge)."""
    return load_model(save_tiny_llama(tmp_path_factory.mktemp("smooth"), init_scale=1.0), device="cpu")


@pytest.mark.parametrize("which", ["smooth_tiny_llama", "tiny_gpt2"])
def test_integrated_gradients_is_complete_on_a_tiny_model(request, which):
    model = request.getfixturevalue(which)
    result = attribute(model, IOI, Target.contrast(" Mary", " John"), "integrated_gradients", n_steps=300, budget=10_000)
    expected = result.target_value - result.base_value
    assert abs(result.scores.sum() - expected) <= 0.01 * abs(expected)
    assert abs(result.convergence_delta) <= 0.01 * abs(expected)


def test_feature_ablation_is_the_drop_when_one_token_is_removed(tiny_llama):
    result = attribute(tiny_llama, "I love dogs because", Target.next_token(" they"), "feature_ablation")
    ids = tokenize(tiny_llama, "I love dogs because")
    baseline = baseline_token_id(tiny_llama)
    they = tiny_llama.tokenizer(" they", add_special_tokens=False).input_ids[0]
    full = _hf_log_probs(tiny_llama, ids)[-1, they].item()
    for i in range(len(ids)):
        removed = [*ids[:i], baseline, *ids[i + 1 :]]
        assert result.scores[i] == pytest.approx(full - _hf_log_probs(tiny_llama, removed)[-1, they].item(), abs=1e-4)


def test_shapley_sampling_is_efficient(tiny_llama):
    """Each sampled permutation's marginal contributions telescope to f(x) - f(baseline)."""
    result = attribute(tiny_llama, "I love dogs because", Target.next_token(" they"), "shapley_sampling", n_samples=3)
    ids = tokenize(tiny_llama, "I love dogs because")
    they = tiny_llama.tokenizer(" they", add_special_tokens=False).input_ids[0]
    empty = _hf_log_probs(tiny_llama, [baseline_token_id(tiny_llama)] * len(ids))[-1, they].item()
    assert result.scores.sum() == pytest.approx(result.target_value - empty, abs=1e-4)


# --- a planted answer and the randomisation sanity check --------------------------------------


@pytest.mark.parametrize("method", ["shap", "integrated_gradients", "feature_ablation", "shapley_sampling"])
def test_every_method_finds_the_planted_first_token(first_token_model, first_token_prompts, method):
    """The trained model's answer is its first input token, so position 0 must score highest."""
    for prompt in first_token_prompts[:2]:
        result = attribute(first_token_model, prompt, Target.next_token(), method)
        assert result.target.token_id == tokenize(first_token_model, prompt)[0]  # it learned the task
        assert int(np.argmax(result.scores)) == 0, result.scores


def test_gradient_x_input_saturates_and_faithfulness_shows_it(first_token_model, first_token_prompts):
    """At a confident prediction (log-prob ~ 0) gradients vanish: gradient x input sees almost nothing,
    and the faithfulness check ranks it below feature ablation. This is what users must be shown.
    """
    prompt = first_token_prompts[0]
    saturated = attribute(first_token_model, prompt, Target.next_token(), "gradient_x_input")
    ablation = attribute(first_token_model, prompt, Target.next_token(), "feature_ablation")
    assert np.abs(saturated.scores).max() < 0.01 * np.abs(ablation.scores).max()
    assert (
        faithfulness(first_token_model, saturated).comprehensiveness < faithfulness(first_token_model, ablation).comprehensiveness
    )


def test_attributions_differ_on_a_reinitialised_model(first_token_model, first_token_prompts, tmp_path):
    """Adebayo et al. 2018: if re-initialising the weights leaves the map unchanged, the method explains nothing."""
    random_model = load_model(save_tiny_llama(tmp_path / "random", seed=123), device="cpu")
    for method in ("integrated_gradients", "feature_ablation", "gradient_x_input", "shap"):
        agreements = [
            rank_agreement(
                attribute(first_token_model, prompt, Target.next_token(), method).scores,
                attribute(random_model, prompt, Target.next_token(), method).scores,
            )
            for prompt in first_token_prompts
        ]
        assert np.nanmean(agreements) < 0.5, (method, agreements)


def test_faithfulness_curves_start_and_end_where_they_must(first_token_model, first_token_prompts):
    result = attribute(first_token_model, first_token_prompts[0], Target.next_token(), "feature_ablation")
    curves = faithfulness(first_token_model, result)
    n = len(result.tokens)
    assert curves.fractions[0] == 0 and curves.fractions[-1] == 1 and len(curves.deletion) == n + 1
    assert curves.deletion[0] == pytest.approx(result.target_value, abs=1e-5)
    assert curves.insertion[-1] == pytest.approx(result.target_value, abs=1e-5)
    assert curves.deletion[-1] == pytest.approx(curves.insertion[0], abs=1e-5)  # everything removed
    assert curves.n_evaluations == faithfulness_evaluations(n) == 2 * (n + 1)  # what the page's cost table promises
    # Removing the one decisive token collapses the answer; keeping it alone nearly restores it.
    assert curves.deletion[1] < result.target_value - 2
    assert curves.comprehensiveness > 1 and curves.sufficiency < curves.comprehensiveness


def test_faithfulness_ranks_a_faithful_method_above_a_shuffled_one(first_token_model, first_token_prompts):
    result = attribute(first_token_model, first_token_prompts[1], Target.next_token(), "feature_ablation")
    reversed_scores = dataclasses.replace(result, scores=-result.scores)
    good, bad = faithfulness(first_token_model, result), faithfulness(first_token_model, reversed_scores)
    assert good.comprehensiveness > bad.comprehensiveness
    assert good.sufficiency < bad.sufficiency


# --- cost, budget and hygiene ---------------------------------------------------------------------


def test_over_budget_runs_are_refused_with_the_estimate(tiny_llama):
    n = len(tokenize(tiny_llama, IOI))
    estimate = estimate_evaluations("shapley_sampling", n, {"n_samples": 50})
    with pytest.raises(InputError, match=f"about {estimate:,} model evaluations, over the budget of 100"):
        attribute(tiny_llama, IOI, None, "shapley_sampling", n_samples=50, budget=100)


@pytest.mark.parametrize("method", METHODS)
def test_evaluations_stay_within_the_estimate(tiny_llama, method):
    result = attribute(tiny_llama, IOI, Target.next_token(), method)
    assert 0 < result.n_evaluations <= estimate_evaluations(method, len(result.tokens), result.settings)


@pytest.mark.parametrize("method", METHODS)
def test_no_hook_remains_after_a_method_or_its_failure(tiny_llama, method):
    attribute(tiny_llama, IOI, None, "gradient_x_input")  # the bridge adds its own internal hooks once
    before = all_hooks(tiny_llama)
    attribute(tiny_llama, IOI, None, method)
    assert all_hooks(tiny_llama) == before
    calls = {"n": 0}

    def fail_inside_the_method(activation, site):
        calls["n"] += 1  # call 1 resolves the top prediction; call 2 is the method's own
        if calls["n"] == 2:
            raise RuntimeError("injected failure")

    with pytest.raises(RuntimeError, match="injected failure"):
        with intervene(tiny_llama, {"blocks.1.hook_resid_pre": fail_inside_the_method}):
            attribute(tiny_llama, IOI, None, method)
    assert all_hooks(tiny_llama) == before


@pytest.mark.parametrize("method", METHODS)
def test_methods_hook_the_shared_model_only_through_the_hook_context(tiny_llama, method, monkeypatch):
    """Captum's layer methods would hook the embedding layer themselves; ours go through `intervene`."""
    import inspect

    attribute(tiny_llama, IOI, None, "gradient_x_input")  # the bridge adds its own internal hooks once
    callers = []
    for register in ("register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook"):
        original = getattr(torch.nn.Module, register)

        def spy(module, *args, _original=original, **kwargs):
            callers.append(inspect.stack()[1].filename)
            return _original(module, *args, **kwargs)

        monkeypatch.setattr(torch.nn.Module, register, spy)
    attribute(tiny_llama, IOI, None, method)
    assert all(caller.endswith("interp/hooks.py") for caller in callers), sorted(set(callers))


def test_unknown_method_and_bad_targets_are_explained(tiny_llama):
    with pytest.raises(InputError, match="Unknown attribution method"):
        attribute(tiny_llama, IOI, None, "lime")
    with pytest.raises(InputError, match="tokens for this model"):
        attribute(tiny_llama, IOI, Target.next_token(" Parisianistically"), "feature_ablation")
    with pytest.raises(InputError, match="continuation is empty"):
        Target.continuation("")


# --- methods as objects, runs as values ---------------------------------------------------------


def test_methods_are_objects_that_carry_their_options(tiny_llama):
    assert list(METHODS) == ["shap", "integrated_gradients", "feature_ablation", "shapley_sampling", "gradient_x_input"]
    assert method_of("ig") == IntegratedGradients() and method_of("shap", {"max_evals": 40}).max_evals == 40
    assert IntegratedGradients(n_steps=128).evaluations(12) == estimate_evaluations("integrated_gradients", 12, {"n_steps": 128})
    by_object = attribute(tiny_llama, IOI, None, ShapleySampling(n_samples=3))
    by_name = attribute(tiny_llama, IOI, None, "shapley_sampling", n_samples=3)
    assert by_object.method == "shapley_sampling" and np.array_equal(by_object.scores, by_name.scores)
    with pytest.raises(InputError, match="Integrated Gradients has no setting 'max_evals'; its settings: n_steps"):
        attribute(tiny_llama, IOI, None, "integrated_gradients", max_evals=10)
    with pytest.raises(InputError, match="setting n_steps must be from 4 to 1024"):
        IntegratedGradients(n_steps=2)


def test_a_new_method_is_one_class(tiny_llama):
    @dataclasses.dataclass(frozen=True)
    class LastToken(AttributionMethod):
        name: ClassVar[str] = "last_token_test"
        title: ClassVar[str] = "Last token only"

        def evaluations(self, n_tokens: int) -> int:
            return 1

        def scores(self, evaluator) -> MethodScores:
            n = len(evaluator.resolved.prompt_ids)
            return MethodScores(np.eye(n)[-1] * evaluator.unchanged())

    try:
        result = AttributionRun(IOI, "last_token_test").run(tiny_llama)
        assert result.attribution.title == "Last token only" and result.attribution.n_evaluations == 1
        assert result.attribution.scores[-1] == result.attribution.target_value
    finally:
        del METHODS["last_token_test"]


def test_an_attribution_run_is_the_attribution_and_its_faithfulness(tiny_llama):
    target = Target.contrast(" Mary", " John")
    seen = []
    checked = AttributionRun(IOI, FeatureAblation(), target).run(tiny_llama, lambda fraction, text: seen.append(fraction))
    direct = attribute(tiny_llama, IOI, target, "feature_ablation")
    assert isinstance(checked, CheckedAttribution) and np.array_equal(checked.attribution.scores, direct.scores)
    assert checked.faithfulness.comprehensiveness == faithfulness(tiny_llama, direct).comprehensiveness
    assert seen[0] == 0 and seen[-1] == 1
    comparison = MethodComparison(IOI, ("feature_ablation", GradientXInput()), target).run(tiny_llama)
    assert [a.method for a in comparison.attributions] == ["feature_ablation", "gradient_x_input"]
    assert np.array_equal(comparison.attributions[0].scores, direct.scores)


def test_run_specs_explain_bad_settings():
    with pytest.raises(InputError, match="is a Python function, which a run cannot keep or replay"):
        AttributionRun(IOI, "feature_ablation", Target.scalar(lambda ids: ids.float().sum(-1), "reward"))
    with pytest.raises(InputError, match="Unknown attribution method 'lime'"):
        MethodComparison(IOI, ("lime",))
    with pytest.raises(InputError, match="at least one attribution method"):
        MethodComparison(IOI, ())
    with pytest.raises(InputError, match="budget"):
        AttributionRun(IOI, "shap", budget=0)


# --- the real model ---------------------------------------------------------------------------


def test_default_model_shap_is_additive_and_integrated_gradients_reports_its_delta(default_model):
    prompt = "The Eiffel Tower is in the city of"
    shap_result = attribute(default_model, prompt, Target.next_token(" Paris"), "shap")
    total = shap_result.base_value + shap_result.scores.sum()
    assert abs(total - shap_result.target_value) <= 1e-4 * max(1.0, abs(shap_result.target_value))
    ig = attribute(default_model, prompt, Target.next_token(" Paris"), "integrated_gradients", n_steps=32)
    assert ig.convergence_delta is not None and np.isfinite(ig.convergence_delta)
    assert ig.settings["n_steps"] == 32
