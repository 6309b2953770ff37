"""The attention page in a real browser: click a head's thumbnail and get its big pattern."""

from __future__ import annotations


def click_cell(chart, *, column: float, row: float) -> None:
    """Click a plotly chart's plot area at fractions of its width and height (scrolling it into view)."""
    area = chart.locator(".nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    area.click(position={"x": box["width"] * column, "y": box["height"] * row}, force=True)


def test_clicking_a_thumbnail_opens_that_heads_pattern(page, tmp_path):
    page.open("attention")
    tab = page.tab
    tab.get_by_role("tabpanel", name="Heads").locator(".gtitle", has_text="Head L0.H0").wait_for()
    # Thumbnails are laid out column = layer, row = head: click into the one at layer 18, head 6.
    click_cell(tab.locator(".js-plotly-plot").first, column=18.5 / 30, row=6.5 / 9)
    page.wait_idle()
    tab.get_by_role("tabpanel", name="Heads").locator(".gtitle", has_text="Head L18.H6").wait_for()
    assert tab.get_by_label("Layer", exact=True).input_value() == "18"
    assert tab.get_by_label("Head", exact=True).input_value() == "6"
    assert page.screenshot("attention", tmp_path).stat().st_size > 10_000


def test_head_types_tab_shows_the_score_map(page, tmp_path):
    page.open("attention")
    page.tab.get_by_role("tab", name="Head types").click()
    page.tab.get_by_text("Top induction heads").wait_for()
    score_map = page.tab.locator(".js-plotly-plot").nth(2)
    score_map.wait_for()
    click_cell(score_map, column=6.5 / 9, row=18.5 / 30)  # the cell of head L18.H6
    page.wait_idle()
    # Its pattern opens right here, under the map (the hidden Heads tab has the same title: take the visible one).
    page.tab.locator(".gtitle", has_text="Head L18.H6").locator("visible=true").first.wait_for()
    assert page.screenshot("attention-head-types", tmp_path).stat().st_size > 10_000
    page.tab.get_by_role("tab", name="Heads").click()
    page.tab.get_by_role("tabpanel", name="Heads").locator(".gtitle", has_text="Head L18.H6").wait_for()


def test_logit_lens_tab_follows_a_target_token(page, tmp_path):
    page.open("attention")
    page.tab.get_by_role("tab", name="Logit lens").click()
    target = page.tab.get_by_label("Follow a target token (optional, one token, e.g. ' Paris')")
    target.fill(" dog")
    target.press("Enter")
    page.wait_idle()
    page.tab.get_by_text("rank (1 = top)").first.wait_for()
    assert page.screenshot("attention-logit-lens", tmp_path).stat().st_size > 10_000
