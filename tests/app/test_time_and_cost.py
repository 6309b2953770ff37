"""What a user sees about time: seconds before a run, a warning for minutes, and a summary after a batch."""

from __future__ import annotations

import re

import pytest

from interp.attribution import COMPARED_BY_DEFAULT
from tests.app.test_pages import open_page
from ui.model import OTHER_CHOICE


@pytest.fixture()
def tiny(tiny_llama_dir) -> dict[str, str]:
    """Sidebar state that picks the tiny test checkpoint."""
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


@pytest.fixture()
def fresh_throughput():
    """The measured throughput is cached per (weights, prompt length): start and end each test without it."""
    from ui.progress import _seconds_per_evaluation

    _seconds_per_evaluation.clear()
    yield
    _seconds_per_evaluation.clear()


def test_the_attribution_page_says_in_seconds_what_the_default_methods_will_take(tiny, fresh_throughput):
    app = open_page("pages/attribution.py", **tiny)
    assert app.multiselect(key="attr_methods").value == list(COMPARED_BY_DEFAULT)
    captions = [c.value for c in app.caption if c.value.startswith("Estimated time: ")]
    assert captions and re.search(r"(about \d+ s|under 1 s) \([\d,]+ forward passes at [\d.]+ m?s\)", captions[0])
    table = next(f.value for f in app.dataframe if "time (estimate, s)" in f.value.columns)
    assert list(table["method"]) == ["SHAP (Partition)", "Shapley value sampling", "Feature ablation"]


def test_a_run_that_will_take_minutes_is_a_warning_before_the_button(tiny, fresh_throughput, monkeypatch):
    import ui.progress

    monkeypatch.setattr(ui.progress, "seconds_per_evaluation", lambda model, ids: 0.5)  # a slow machine
    app = open_page("pages/attribution.py", **tiny)
    warnings = [w.value for w in app.warning if w.value.startswith("This will take about ")]
    assert warnings and " min; fewer steps, samples or methods shorten it." in warnings[0]
    assert "at 0.5 s" in warnings[0]


def test_integrated_gradients_warns_when_its_scores_do_not_add_up(tiny, fresh_throughput):
    app = open_page("pages/attribution.py", **tiny)
    app.multiselect(key="attr_methods").set_value(["integrated_gradients"]).run()
    app.button(key="attr_run").click().run()
    assert not app.exception and not app.error
    assert any("convergence delta" in w.value and "Do not read these scores yet" in w.value for w in app.warning)


def test_a_steering_batch_ends_with_a_summary_line(tiny):
    app = open_page("pages/steering.py", **tiny)
    app.file_uploader(key="steer_batch_file").upload("prompts.txt", b"I love\nThe store\n", "text/plain").run()
    app.button(key="steer_batch_run").click().run()
    assert not app.exception and not app.error
    summary = [s.value for s in app.success if "mean behaviour gain" in s.value]
    assert summary and re.match(r"2 prompts in [\d.]+ s: mean behaviour gain [+-][\d.]+ .+, mean perplexity ratio ×", summary[0])
