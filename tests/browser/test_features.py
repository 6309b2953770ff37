"""The Features page in a real browser: open a feature's dashboard (its contexts drawn as chips, its histogram)
and steer with it (the scores appear)."""

from __future__ import annotations


def test_open_a_features_dashboard_and_steer_with_it(page, tmp_path):
    page.open("features")
    tab = page.tab
    tab.get_by_text("Features on your prompt").wait_for()
    feature = tab.get_by_role("spinbutton", name="Feature")
    feature.fill("123")
    feature.press("Enter")
    page.wait_idle(300)
    tab.get_by_text("of tokens").first.wait_for()  # "Fires on … % of tokens of the indexed text"
    assert tab.get_by_role("textbox", name="Label (yours to rename; kept on this machine)").input_value()
    chips = tab.locator('[data-testid="stHtml"]')
    assert chips.count() >= 8  # the top contexts, one row of token chips each
    assert "codec" in " ".join(chips.all_inner_texts())  # feature 123 fires on Unicode escapes in the docs' examples
    assert tab.locator('[data-testid="stPlotlyChart"]').count() >= 1
    tab.get_by_text("Clamp its activation").click()
    page.wait_idle()
    tab.get_by_role("button", name="Steer with feature 123").click()
    page.wait_idle(600)
    tab.get_by_text("sentiment (VADER compound) gain").first.wait_for()
    assert tab.get_by_text("123 (clamp 8)").count() == 1
    assert page.screenshot("features", tmp_path).stat().st_size > 10_000
