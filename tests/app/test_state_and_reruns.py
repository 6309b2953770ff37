"""Through the pages: a widget shows the value that is used, state survives a model switch, and a rerun that
changes no input is a cache lookup (issue 20, "State and reruns")."""

from __future__ import annotations

import pytest
import torch

from interp import load_model
from tests.app.test_pages import PLANTED, open_page
from ui.cached import run_cache
from ui.model import KEY_MODEL, OTHER_CHOICE

pytestmark = pytest.mark.real_model


@pytest.fixture()
def tiny(tiny_llama_dir) -> dict[str, str]:
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


class SliderInBrowser:
    """What a browser shows for one slider across runs. A slider drawn anew shows the value the server sent with it, or
    its own default (its minimum) when none was sent; a slider that stays on the page keeps showing what it showed
    (the user's own move) unless the server sends a value. Call ``seen`` after every run."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.showing: float | None = None

    def seen(self, app) -> float | None:
        drawn = [s for s in app.slider if s.key == self.key]
        if not drawn:
            self.showing = None  # gone from the page: drawn anew next time
            return None
        proto = drawn[0].proto
        if proto.set_value:
            self.showing = float(proto.value[0])
        elif self.showing is None:
            self.showing = float(proto.default[0])
        return self.showing

    def move(self, app, value: float) -> float | None:
        app.slider(key=self.key).set_value(value)
        if self.showing is not None:
            self.showing = value  # the user's hand moved it
        app.run()
        return self.seen(app)


def switch_model(app, **state: str):
    """The sidebar's model switch. AppTest reruns only the page after its first run, so load the model the way the
    sidebar does and put it where app.py puts it."""
    for key, value in state.items():
        app.session_state[key] = value
    app.session_state[KEY_MODEL] = load_model(state["model_custom_spec"], device="cpu")
    return app.run()


def test_after_a_vector_upload_the_coefficient_slider_shows_what_is_applied(tiny, tiny_llama):
    from steering.vector import SteeringVector

    info = tiny_llama.info
    vector = SteeringVector((1,), torch.ones(1, info.d_model), d_model=info.d_model, model_name=info.name,
                            weights_sha256=info.weights_sha256)  # fmt: skip
    app = open_page("pages/steering.py", **tiny)
    browser = SliderInBrowser("steer_coefficient")
    browser.seen(app)
    app.radio(key="steer_source").set_value("file").run()  # no vector yet: the tune section is not drawn
    assert browser.seen(app) is None
    app.file_uploader(key="steer_vector_file").upload("v.safetensors", vector.to_safetensors()).run()
    assert not app.exception and not app.error
    for _ in range(2):  # after the upload, and after a further interaction
        applied = app.session_state["ui_specs_on_screen"]["steering_evaluation"].coefficient
        assert browser.seen(app) == applied == 3.0
        app.text_input(key="steer_prompt").input("I think").run()
        assert not app.exception and not app.error
    assert browser.move(app, 1.5) == 1.5
    assert app.session_state["ui_specs_on_screen"]["steering_evaluation"].coefficient == 1.5


def test_a_run_never_sends_a_slider_the_user_is_moving_back_to_an_older_value(tiny):
    """A slider moved again while a run is on must keep the user's new position: the page may give a widget its value
    back only when the browser has forgotten it, never on a run where it stays drawn."""
    app = open_page("pages/steering.py", **tiny)
    assert not app.exception and not app.error
    for value in (2.5, 2.0, 1.0):
        app.slider(key="steer_coefficient").set_value(value).run()
        assert not app.exception and not app.error
        assert not app.slider(key="steer_coefficient").proto.set_value, value
        assert not app.text_input(key="steer_prompt").proto.set_value
    assert app.session_state["ui_specs_on_screen"]["steering_evaluation"].coefficient == 1.0


def test_an_exported_vector_times_coefficient_says_so_and_starts_the_slider_at_1(tiny, tiny_llama):
    from steering.vector import SteeringVector, applied_coefficient, load_vector

    info = tiny_llama.info
    vector = SteeringVector((1,), torch.ones(1, info.d_model), d_model=info.d_model, model_name=info.name,
                            weights_sha256=info.weights_sha256)  # fmt: skip
    data = (vector * 3.0).to_safetensors(coefficient_applied=3.0)
    assert applied_coefficient(data) == 3.0 and applied_coefficient(vector.to_safetensors()) is None
    assert torch.equal(load_vector("v.safetensors", data).directions, 3 * vector.directions)
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("file").run()
    browser = SliderInBrowser("steer_coefficient")
    app.file_uploader(key="steer_vector_file").upload("v.safetensors", data).run()
    assert not app.exception and not app.error
    assert any("already has coefficient +3 applied" in i.value for i in app.info), [i.value for i in app.info]
    assert browser.seen(app) == 1.0
    assert app.session_state["ui_specs_on_screen"]["steering_evaluation"].coefficient == 1.0
    assert browser.move(app, 2.0) == 2.0  # the user's own choice is not reset by the next rerun
    app.run()
    assert browser.seen(app) == 2.0
    assert app.session_state["ui_specs_on_screen"]["steering_evaluation"].coefficient == 2.0


def test_a_gguf_upload_explains_why_its_layer_reads_one_lower(tiny, tiny_llama):
    from steering.vector import SteeringVector

    info = tiny_llama.info
    vector = SteeringVector((2,), torch.ones(1, info.d_model), d_model=info.d_model, model_name=info.name)
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("file").run()
    app.file_uploader(key="steer_vector_file").upload("v.gguf", vector.to_gguf()).run()
    assert not app.exception and not app.error
    assert any("exported here at layer 2 reads back as layer 1" in i.value for i in app.info), [i.value for i in app.info]


def test_a_head_opened_on_another_model_does_not_survive_a_switch_to_the_planted_one(tiny):
    app = open_page("pages/circuits.py", **tiny)
    app.session_state["circ_open_head"] = (18, 6)  # a head the default model has and the planted one lacks
    app.session_state["circ_ablate"] = ["L18.H6"]
    switch_model(app, **PLANTED)
    app.radio(key="circ_task").set_value("induction").run()
    app.button(key="circ_run").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]


def test_the_planted_models_low_patching_agreement_is_explained():
    app = open_page("pages/circuits.py", **PLANTED)
    app.radio(key="circ_task").set_value("induction").run()
    app.button(key="circ_run").click().run()
    assert not app.exception and not app.error
    assert any("Low agreement here (Spearman" in i.value and "saturated" in i.value for i in app.info)


@pytest.mark.parametrize("page, key", [("pages/home.py", "home_prompt"), ("pages/attention.py", "attn_prompt")])
def test_a_model_switch_keeps_the_prompt(tiny, page, key):
    app = open_page(page, **tiny)
    widget = app.text_area(key=key)
    widget.input("t1 t2 t3 t1 t2").run()
    app.session_state["model_choice"] = OTHER_CHOICE
    app.session_state["model_custom_spec"] = ""  # on the way to another model: no model, the page stops
    app.session_state[KEY_MODEL] = None
    app.run()
    switch_model(app, **PLANTED)
    assert not app.exception
    assert app.text_area(key=key).value == "t1 t2 t3 t1 t2"


@pytest.mark.parametrize("page, key", [("pages/home.py", "home_prompt"), ("pages/attention.py", "attn_prompt")])
def test_an_english_prompt_on_the_planted_model_is_said_to_be_outside_its_vocabulary(page, key):
    app = open_page(page, **PLANTED)
    app.text_area(key=key).input("t1 t2 hello world").run()
    assert not app.exception
    assert any("2 of the prompt's 4 tokens (10 characters) are outside" in w.value for w in app.warning), [
        w.value for w in app.warning
    ]
    app.text_area(key=key).input("t1 t2 t3").run()
    assert not any("outside" in w.value for w in app.warning)


@pytest.fixture()
def computed(monkeypatch) -> list[str]:
    """The titles of the runs that really computed (not answered from the run cache), in order."""
    import ui.cached

    titles: list[str] = []
    really_running = ui.cached.running

    def counting(title: str):
        titles.append(title)
        return really_running(title)

    monkeypatch.setattr(ui.cached, "running", counting)
    run_cache().clear()  # the cache is shared by the whole test process: the first run here must really compute
    return titles


def test_a_no_change_rerun_of_steering_computes_nothing(tiny, computed):
    app = open_page("pages/steering.py", **tiny)
    app.number_input(key="steer_samples").set_value(8).run()
    assert not app.exception and not app.error
    assert computed, "the first run with 8 samples must compute"
    before = len(computed)
    app.run()
    app.run()
    assert not app.exception and not app.error
    assert computed[before:] == []


def test_a_no_change_rerun_of_the_rlhf_page_after_training_and_best_of_n_computes_nothing(tiny, computed):
    app = open_page("pages/rlhf.py", **tiny)
    app.button(key="rlhf_train").click().run()
    app.button(key="rlhf_bon").click().run()
    assert not app.exception and not app.error
    assert len(computed) >= 2, computed  # the training and the best-of-N run
    before = len(computed)
    app.run()
    app.run()
    assert not app.exception and not app.error
    assert computed[before:] == []
