"""The sidebar's engine corner: the status line says what the shared engine decodes, and fast mode (bf16) says how
far it agrees with fp32 and is what the Steering page's samples decode on."""

from __future__ import annotations

import pytest

from interp.engine import engine_for, request_for
from tests.app.test_pages import open_app_with
from ui.engine_status import KEY_FAST, engine_status_line
from ui.model import OTHER_CHOICE


@pytest.fixture()
def tiny(tiny_llama_dir) -> dict[str, str]:
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


def test_the_sidebar_says_the_engine_is_idle(tiny):
    app = open_app_with(**tiny)
    assert any(c.value.startswith("Engine idle") for c in app.sidebar.caption), [c.value for c in app.sidebar.caption]


def test_the_status_line_names_a_generation_in_flight(tiny_llama):
    stream = engine_for(tiny_llama).submit(request_for(tiny_llama, "Hello there", max_new_tokens=200, label="Home: writing"))
    try:
        next(stream.events(timeout=60))
        assert engine_status_line(tiny_llama).startswith("1 generation decoding (1 row)")
    finally:
        stream.cancel()
        stream.result(timeout=60)


def test_fast_mode_shows_its_agreement_and_the_steering_samples_decode_in_bf16(tiny):
    from ui.cached import is_cached
    from ui.engine_status import _fast_copy
    from ui.model import KEY_MODEL

    app = open_app_with(**tiny, **{KEY_FAST: True})
    captions = [c.value for c in app.sidebar.caption]
    assert any("picks the same next token as fp32" in c for c in captions), captions
    assert any("sweep the behaviour gain" in c and "recommends" in c for c in captions), captions
    app.switch_page("pages/steering.py").run()
    assert not app.exception and not app.error
    spec = app.session_state["ui_specs_on_screen"]["steering_evaluation"]
    model = app.session_state[KEY_MODEL]
    fast = _fast_copy(model, model.info.weights_sha256)  # the process-wide copy the page used
    assert fast.info.dtype == "bfloat16"
    assert is_cached(fast, spec) and not is_cached(model, spec)  # decoded, and kept, on the bf16 copy only
