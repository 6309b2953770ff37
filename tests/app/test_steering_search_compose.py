"""The Steering page's Search, Combine and Look-inside modes, driven on the tiny model: what each shows, checked
against the library run outside the app, and bad input shown as a message."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from steering.record import record_steered
from steering.scores import SCORERS, Scorer
from steering.search import split_prompts
from tests.app.test_state_and_reruns import computed  # noqa: F401 (a fixture)
from tests.app.test_steering_modes import in_mode, metrics, sentiment_vector
from ui.cached import cached_run, run_cache
from ui.model import OTHER_CHOICE

pytestmark = pytest.mark.real_model  # the app's sidebar loads the default model's card first, as every page test does


@pytest.fixture()
def tiny(tiny_llama_dir) -> dict[str, str]:
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


@pytest.fixture(autouse=True)
def own_data_folder(monkeypatch, tmp_path):
    """Each test's own data folder: the Search mode keeps its studies in a journal there, and a study is named by its
    settings, not by the scorer's code, so a journal shared between tests would resume another scorer's trials."""
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))


def errors(app) -> list[str]:
    return [e.value for e in app.error]


def charts(app, title: str) -> list[dict]:
    """The page's figures whose title starts with ``title`` (section 1 above the mode draws figures of its own)."""
    figures = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return [f for f in figures if f["layout"].get("title", {}).get("text", "").startswith(title)]


def scored_by(monkeypatch, score) -> None:
    """The sentiment scorer replaced by ``score`` (same name and unit) for this test, with the run cache emptied:
    results computed with the real scorer have the same digests."""
    real = SCORERS["sentiment"]
    monkeypatch.setitem(SCORERS, "sentiment", Scorer(real.name, real.unit, score))
    run_cache().clear()


@pytest.fixture()
def scored_by_hash(monkeypatch):
    """A deterministic hash of each text: VADER scores the tiny model's random text about 0 whatever the steering, so
    with this one some trials gain and the chosen point has something to show."""
    scored_by(monkeypatch, lambda texts: np.array([zlib.crc32(t.encode()) % 1000 / 1000 for t in texts]))
    yield
    run_cache().clear()


@pytest.fixture()
def scored_flat(monkeypatch):
    """Every text scores 0: no trial gains, so nothing qualifies."""
    scored_by(monkeypatch, lambda texts: np.zeros(len(texts)))
    yield
    run_cache().clear()


def test_search_shows_the_front_the_chosen_setting_and_its_held_out_numbers(tiny, tiny_llama, scored_by_hash):
    app = in_mode(tiny, "search")
    app.multiselect(key="steer_search_directions").set_value(["raise"])
    app.number_input(key="steer_search_trials").set_value(4)
    app.number_input(key="steer_search_limit").set_value(10.0)
    app.button(key="steer_search").click().run()
    assert not app.exception and not app.error, errors(app)
    result = cached_run(tiny_llama, app.session_state["steer_search_spec"])  # the page's own result, from the cache
    (search,) = result.searches
    assert len(search.trials) == 4 and search.chosen is not None
    shown = metrics(app)
    assert shown["Layer"] == str(search.chosen.layer)
    unit = SCORERS["sentiment"].unit
    assert shown[f"Gain, held out ({unit})"] == f"{search.held_out.gain:+.3f}"
    assert shown["KL(unsteered ‖ steered), held out"] == f"{search.held_out.kl.mean:.3f} nats"
    assert shown["Perplexity, held out"] == f"x{search.held_out.perplexity_ratio:.2f}"
    effects = search.held_out.reliability
    assert shown[f"Effect per prompt, 95% interval ({unit})"] == f"[{effects.low:+.3f}, {effects.high:+.3f}]"
    assert shown["Anti-steerable prompts"] == f"{100 * effects.anti_steerable_fraction:.0f}%"
    (front,) = charts(app, "Raise: 4 trials")
    names = [trace["name"] for trace in front["data"]]
    assert names[:2] == ["trials", "Pareto front"] and names[2] == f"chosen: {search.chosen.describe()}"
    assert len(front["data"][0]["x"]) == 4  # every trial drawn, grey
    app.radio(key="steer_search_damage").set_value("kl").run()
    assert not app.exception and charts(app, "Raise")[0]["data"][0]["x"] == [t.kl for t in search.trials]


def test_a_stopped_or_longer_search_continues_from_the_trials_it_finished(tiny, tiny_llama, monkeypatch):
    sizes = []  # how many texts each scoring call saw: the search prompts' samples or the held-out prompts'

    def score(texts):
        sizes.append(len(texts))
        return np.array([zlib.crc32(t.encode()) % 1000 / 1000 for t in texts])

    scored_by(monkeypatch, score)
    app = in_mode(tiny, "search")
    app.multiselect(key="steer_search_directions").set_value(["raise"])
    app.multiselect(key="steer_search_modes").set_value(["add"])
    app.number_input(key="steer_search_trials").set_value(2)
    app.button(key="steer_search").click().run()
    assert not app.exception and not app.error, errors(app)
    spec = app.session_state["steer_search_spec"]
    per_search = len(split_prompts(spec.prompts, spec.held_out_fraction, spec.seed)[0]) * spec.n_samples
    assert sizes.count(per_search) == 3  # the unsteered baseline and 2 trials
    sizes.clear()
    app.session_state["steer_search_stop"] = True  # as the Stop button's own rerun has it
    app.run()
    assert any("its finished trials are kept" in i.value for i in app.info), [i.value for i in app.info]
    app.number_input(key="steer_search_trials").set_value(3)
    app.button(key="steer_search").click().run()
    assert not app.exception and not app.error, errors(app)
    assert sizes.count(per_search) == 2  # the baseline and the one new trial: the 2 finished ones came from the journal
    (search,) = cached_run(tiny_llama, app.session_state["steer_search_spec"]).searches
    assert [t.number for t in search.trials] == [0, 1, 2]


def test_search_explains_bad_settings_and_when_nothing_qualified(tiny, scored_flat):
    app = in_mode(tiny, "search")
    app.multiselect(key="steer_search_layers").set_value([]).run()
    app.button(key="steer_search").click().run()
    assert not app.exception and errors(app) == ["Choose at least one layer to search."]
    app.multiselect(key="steer_search_layers").set_value([0])
    app.multiselect(key="steer_search_directions").set_value([]).run()
    app.button(key="steer_search").click().run()
    assert not app.exception and any("Choose the directions to search" in e for e in errors(app)), errors(app)
    app.multiselect(key="steer_search_directions").set_value(["raise"])
    app.multiselect(key="steer_search_modes").set_value(["add"])
    app.number_input(key="steer_search_trials").set_value(2)
    app.button(key="steer_search").click().run()
    assert not app.exception and not app.error, errors(app)
    assert any("No trial raised the behaviour while keeping perplexity within 2x" in w.value for w in app.warning)
    app.session_state["steer_search_stop"] = True  # as the Stop button's own rerun has it
    app.run()
    assert not app.exception and any("The search stopped" in i.value for i in app.info)
    assert "steer_search_spec" not in app.session_state and not charts(app, "Raise")


def test_combine_shows_each_behaviour_under_each_condition_and_the_interaction(tiny, tiny_llama):
    app = in_mode(tiny, "compose")
    app.text_area(key="steer_compose_prompts").input("I think\nToday")
    app.number_input(key="steer_compose_samples").set_value(1)
    app.button(key="steer_compose").click().run()
    assert not app.exception and not app.error, errors(app)
    spec = app.session_state["steer_compose_spec"]
    result = cached_run(tiny_llama, spec)
    assert result.behaviours == ("this vector", "weddings")
    assert result.condition_names == ("unsteered", "alone: this vector", "alone: weddings", "together")
    # the first item is the page's vector at the chosen layer; the second the built-in weddings pairs' vector
    assert spec.items[0].vector.directions.equal(sentiment_vector(tiny_llama).at_layers([0]).directions)
    shown = metrics(app)
    for b, (behaviour, scorer) in enumerate(zip(result.behaviours, ("sentiment", "weddings"), strict=True)):
        unit = SCORERS[scorer].unit
        assert shown[f"Interaction — {behaviour} ({unit})"] == f"{result.together[b] - result.additive_prediction[b]:+.3f}"
    assert shown["KL(unsteered ‖ together)"] == f"{result.kl[-1]:.3f} nats"
    assert shown["Perplexity, together"] == f"{result.conditions[-1].mean_perplexity:.1f}"
    table, damage = (frame.value for frame in app.dataframe)
    assert list(table["behaviour"]) == ["this vector", "weddings"] and list(damage["condition"]) == list(result.condition_names)
    (bars,) = charts(app, "Each behaviour under each condition")
    assert charts(app, "Damage of each condition")
    assert {trace["name"] for trace in bars["data"]} == {*result.condition_names, "additive prediction"}
    assert any("Interaction: how far the score with both vectors is" in c.value for c in app.caption)
    app.text_area(key="steer_compose_prompts").input("  \n").run()
    app.button(key="steer_compose").click().run()
    assert not app.exception and errors(app) == ["Give at least one prompt (a list of texts)."]
    assert not charts(app, "Each behaviour")  # the old result is not left looking current


def test_look_inside_shows_what_the_steered_generation_carried_with_no_extra_pass(tiny, tiny_llama):
    app = in_mode(tiny, "record")
    app.button(key="steer_record").click().run()
    assert not app.exception and not app.error, errors(app)
    spec = app.session_state["steer_record_spec"]
    vector = sentiment_vector(tiny_llama).at_layers([0])
    expected = record_steered(tiny_llama, spec.prompt, vector, 3.0, [0], max_new_tokens=20)  # outside the app
    shown = metrics(app)
    assert shown["Forward passes"] == "20" == str(expected.forward_passes)  # one per token chosen: no recompute
    along = expected.projection("blocks.0.hook_resid_pre")[expected.n_prompt :]
    assert shown["Along the direction at layer 0"] == f"{along.mean():+.2f}"
    (heatmap,) = charts(app, "Component along")
    (norms,) = charts(app, "Norm of the residual")
    assert np.allclose(heatmap["data"][0]["z"], [expected.projection(name) for name in expected.names], atol=1e-5)
    assert [trace["name"] for trace in norms["data"]] == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    assert app.text[0].value == expected.prompt + expected.text
    assert any("Captured during generation, no recompute: 20 forward passes" in c.value for c in app.caption)
    app.text_input(key="steer_record_prompt").input("   ").run()
    app.button(key="steer_record").click().run()
    assert not app.exception and errors(app) == ["The prompt is empty. Type some text."]


def test_a_no_change_rerun_after_a_recording_computes_nothing(tiny, computed):  # noqa: F811
    app = in_mode(tiny, "record")
    app.button(key="steer_record").click().run()
    assert not app.exception and not app.error, errors(app)
    assert "Steered recording" in computed
    before = len(computed)
    app.run()
    app.run()
    assert not app.exception and not app.error and metrics(app)["Forward passes"] == "20"
    assert computed[before:] == []
