"""The Steering page's modes beyond addition, driven on the tiny model: what each shows, checked against the library
run outside the app, and that a rerun with no change computes nothing."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch

from interp import load_model
from interp.tokens import tokenize
from steering.ablation import HARMFUL_INSTRUCTIONS, ablate, refusal_direction
from steering.conditional import FOOD_PROMPTS, OTHER_PROMPTS, condition_accuracy, condition_direction, fit_threshold
from steering.datasets import built_in
from steering.make import mean_difference
from steering.reliability import pair_consistency, per_prompt_effects
from steering.toolkit_runs import CONDITION_TEST_PROMPTS
from tests.app.test_pages import open_page
from tests.app.test_state_and_reruns import computed  # noqa: F401 (a fixture)
from ui.cached import cached_run
from ui.model import OTHER_CHOICE

pytestmark = pytest.mark.real_model  # the app's sidebar loads the default model's card first, as every page test does


@pytest.fixture()
def tiny(tiny_llama_dir) -> dict[str, str]:
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


def in_mode(tiny: dict[str, str], mode: str):
    app = open_page("pages/steering.py", **tiny)
    app.segmented_control(key="steer_mode").set_value(mode).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    return app


def metrics(app) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def side_by_side(app) -> tuple[list[str], list[str]]:
    """The texts of the two columns: the unsteered column's, then the steered column's (the tree lists them so)."""
    texts = [t.value for t in app.text]
    return texts[: len(texts) // 2], texts[len(texts) // 2 :]


def sentiment_vector(model):
    """The page's default vector (built-in sentiment, mean difference, read as the mean over tokens)."""
    return mean_difference(model, built_in("sentiment"), list(range(model.info.n_layers)), position="mean")


def test_section_1_shows_how_consistent_the_pairs_are_with_the_vector(tiny, tiny_llama):
    app = open_page("pages/steering.py", **tiny)
    line = next(m.value for m in app.markdown if m.value.startswith("**Pair consistency at layer 0:**"))
    expected = pair_consistency(tiny_llama, built_in("sentiment"), sentiment_vector(tiny_llama), 0, position="mean")
    assert f"mean cosine {expected.mean:+.2f} of the 34 pairs'" in line and f"lowest {expected.minimum:+.2f}" in line


def test_the_add_mode_shows_the_effect_per_prompt_of_a_file_with_its_interval(tiny, tiny_llama):
    app = open_page("pages/steering.py", **tiny)
    assert app.segmented_control(key="steer_mode").value == "add"
    app.file_uploader(key="steer_batch_file").upload("prompts.txt", b"I love\nThe store\nToday\n", "text/plain").run()
    app.button(key="steer_batch_run").click().run()
    assert not app.exception and not app.error
    line = next(m.value for m in app.markdown if m.value.startswith("**Effect per prompt:**"))
    batch = cached_run(tiny_llama, app.session_state["steer_batch_spec"])  # the same weights: the page's own result
    effects = per_prompt_effects(batch, goal="raise")
    assert f"95% confidence interval [{effects.low:+.3f}, {effects.high:+.3f}] over 3 prompts" in line
    assert f"**{100 * effects.anti_steerable_fraction:.0f}%** of the prompts were moved the wrong way" in line


def test_only_when_it_applies_shows_the_threshold_its_accuracy_and_which_prompts_were_steered(tiny, tiny_llama):
    app = in_mode(tiny, "conditional")
    condition = condition_direction(tiny_llama, FOOD_PROMPTS, OTHER_PROMPTS, layer=0)
    check = fit_threshold(tiny_llama, condition, FOOD_PROMPTS, OTHER_PROMPTS)
    shown = metrics(app)
    assert shown["Threshold (cosine)"] == f"{check.threshold:+.3f}"
    accuracy = condition_accuracy(check, tiny_llama, FOOD_PROMPTS, OTHER_PROMPTS)
    assert shown["Accuracy on the 20 labelled prompts"] == f"{100 * accuracy:.0f}%"
    fires = [check.fires(tiny_llama, prompt) for prompt in CONDITION_TEST_PROMPTS]
    assert any(fires) and not all(fires), fires  # the default test prompts show both cases on this model
    verdicts = [m.value for m in app.markdown if "fires: " in m.value]
    assert [("fires: yes" in v) for v in verdicts] == fires
    assert shown["Test prompts steered"] == f"{sum(fires)} of {len(fires)}"
    texts = [t.value for t in app.text]  # per prompt: unsteered, then with the condition
    for i, fired in enumerate(fires):
        plain, conditional = texts[2 * i], texts[2 * i + 1]
        assert (plain != conditional) == fired, (CONDITION_TEST_PROMPTS[i], plain, conditional)


def test_only_when_it_applies_explains_bad_prompt_lists_and_shows_html_as_text(tiny):
    app = in_mode(tiny, "conditional")
    app.text_area(key="steer_cast_on").input("\n  \n").run()
    assert not app.exception
    assert any("Give at least one 'on' prompt" in e.value for e in app.error), [e.value for e in app.error]
    app.text_area(key="steer_cast_on").input("How do I bake bread?").run()
    app.text_area(key="steer_cast_tests").input("<b>soup</b> and *stew*\n" + "word " * 5000).run()
    assert not app.exception
    assert any("test prompts number 2" in e.value for e in app.error), [e.value for e in app.error]  # too long: which one
    app.text_area(key="steer_cast_tests").input("<b>soup</b> and *stew*").run()
    assert not app.exception and not app.error
    (verdict,) = [m.value for m in app.markdown if "fires: " in m.value]
    assert verdict.startswith(r"\<b\>soup\</b\> and \*stew\*")  # escaped: shown as typed, not as markup


def test_remove_a_direction_answers_with_and_without_it_and_downloads_the_orthogonalised_checkpoint(
    tiny, tiny_llama, monkeypatch, tmp_path
):
    from streamlit.runtime.media_file_manager import MediaFileManager

    downloads = {}
    really_add = MediaFileManager.add_deferred

    def remembered(self, data_callable, mimetype, coordinates, file_name=None, *args, **kwargs):
        downloads[file_name] = data_callable  # what the browser's click would run
        return really_add(self, data_callable, mimetype, coordinates, file_name, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", remembered)
    app = in_mode(tiny, "ablation")
    kl = metrics(app)["KL(unablated ‖ ablated)"]
    assert kl.endswith(" nats") and float(kl.split()[0]) > 0
    plain, ablated = (t.value for t in app.text)
    assert plain != ablated
    assert not app.download_button  # built only when asked
    app.button(key="steer_ablate_build").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    (button,) = app.download_button
    assert button.label.startswith("Download the orthogonalised checkpoint (.zip")
    assert any("are equal up to float32 rounding, within 0.001" in c.value for c in app.caption), [c.value for c in app.caption]
    archive = zipfile.ZipFile(io.BytesIO(downloads["orthogonalised.zip"]()))
    names = set(archive.namelist())
    assert {"orthogonalised/config.json", "orthogonalised/model.safetensors"} <= names
    archive.extractall(tmp_path)
    # independent of the page: the downloaded weights compute what the library's hooks compute
    direction = refusal_direction(tiny_llama, layer=tiny_llama.info.n_layers // 2).direction
    tokens = torch.tensor([tokenize(tiny_llama, HARMFUL_INSTRUCTIONS[0])])
    with ablate(tiny_llama, direction), torch.inference_mode():
        hooked = tiny_llama.bridge(tokens)
    downloaded = load_model(tmp_path / "orthogonalised", device="cpu")
    with torch.inference_mode():
        baked = downloaded.bridge(tokens)
    assert torch.allclose(hooked, baked, atol=1e-4)


def test_rotate_by_0_degrees_changes_nothing_and_a_rotation_keeps_the_norm(tiny):
    app = in_mode(tiny, "rotate")
    app.slider(key="steer_rotate_angle").set_value(0.0).run()
    assert not app.exception and not app.error
    unsteered, rotated = side_by_side(app)
    assert unsteered == rotated
    assert metrics(app)["KL(unsteered ‖ rotated)"] == "0.000 nats"
    app.slider(key="steer_rotate_angle").set_value(60.0).run()
    assert not app.exception and not app.error
    unsteered, rotated = side_by_side(app)
    assert len(rotated) == 2 and unsteered != rotated
    assert float(metrics(app)["KL(unsteered ‖ rotated)"].split()[0]) > 0
    shown = metrics(app)
    assert shown["Norm ‖x‖ before (layer 0)"] == shown["Norm ‖x′‖ after"]
    assert any("+60°" in m.value for m in app.markdown)


@pytest.mark.parametrize("mode", ["conditional", "ablation", "rotate"])
def test_a_no_change_rerun_of_a_mode_computes_nothing(tiny, computed, mode):  # noqa: F811
    app = in_mode(tiny, mode)
    assert computed, f"the first run of {mode} must compute"
    before = len(computed)
    app.run()
    app.run()
    assert not app.exception and not app.error
    assert computed[before:] == []


def test_only_the_chosen_mode_runs(tiny, computed):  # noqa: F811
    app = open_page("pages/steering.py", **tiny, steer_mode="rotate")  # the page opens in the mode chosen before
    assert not app.exception and not app.error
    on_steering = [title for title in computed if title != "Next-token predictions"]  # the Home page's, opened first
    assert "Angular steering" in on_steering
    assert set(on_steering) <= {"Angular steering", "Pair consistency"}, computed  # nothing of another mode, nor of Add
