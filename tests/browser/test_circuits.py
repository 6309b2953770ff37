"""The circuits page in a real browser: load the planted model, run a sweep, open the top head."""

from __future__ import annotations

from tests.browser.test_attention import click_cell


def test_planted_circuit_is_found_from_the_browser(page, tmp_path):
    page.open("circuits")
    tab = page.tab
    tab.get_by_role("button", name="Use the model with a planted induction circuit").click()
    page.wait_idle()
    tab.get_by_text("induction_model").first.wait_for()  # the sidebar now shows the planted model
    tab.get_by_role("button", name="Run sweep").click()
    page.wait_idle(300)
    exact = tab.locator(".js-plotly-plot", has=tab.locator(".gtitle", has_text="Activation patching (exact)"))
    exact.wait_for()
    opened = tab.locator(".gtitle", has_text="Head L1.H2")
    for _ in range(3):  # a click that lands while the chart is still being laid out is lost: click again
        click_cell(exact, column=2.5 / 4, row=1.5 / 2)  # head L1.H2
        page.wait_idle()
        if opened.count():
            break
    opened.wait_for()
    assert page.screenshot("circuits", tmp_path).stat().st_size > 10_000
    # The same behaviour as edges: the circuit drawn as a graph, beside its faithfulness curve.
    tab.get_by_role("button", name="Find the circuit").click()
    page.wait_idle(300)
    graph = tab.locator(".js-plotly-plot", has=tab.locator(".gtitle", has_text="The circuit"))
    graph.wait_for(timeout=300_000)
    graph.scroll_into_view_if_needed()
    node_labels = {text.strip() for text in graph.locator("g.textpoint text").all_text_contents()}
    assert {"input", "L0.H1", "L1.H2", "logits"} <= node_labels  # the planted heads are nodes the user sees
    tab.locator(".gtitle", has_text="Faithfulness — CPR").wait_for()
    assert tab.get_by_text("really patched one at a time").is_visible()
    assert page.screenshot("circuits-edges", tmp_path).stat().st_size > 10_000


def test_factual_preset_runs_on_the_default_model(page, tmp_path):
    page.open("circuits")
    tab = page.tab
    tab.get_by_text("Factual recall").click()
    page.wait_idle()
    tab.get_by_role("button", name="Run sweep").click()
    page.wait_idle(300)
    tab.locator(".gtitle", has_text="Activation patching (exact)").wait_for(timeout=300_000)
    tab.get_by_text("Direct logit attribution").first.wait_for()
    assert page.screenshot("circuits-factual", tmp_path).stat().st_size > 10_000
