"""The Compression page in a real browser, on the default model: compare variants, read the table and the plots."""

from __future__ import annotations


def test_compare_quantised_variants_with_the_original(page, tmp_path):
    page.open("compression")
    tab = page.tab
    tab.get_by_role("button", name="Compare with the original").click()
    page.wait_idle(600)
    tab.locator(".gtitle", has_text="Quality against size").wait_for(timeout=600_000)
    tab.locator(".gtitle", has_text="What changed inside").wait_for()
    grid = tab.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    assert tab.get_by_text("The original:").first.is_visible()  # its size and speed, the baseline of every row
    points = tab.locator(".js-plotly-plot", has=tab.locator(".gtitle", has_text="Quality against size"))
    labels = " ".join(points.locator("g.textpoint text").all_text_contents())
    assert "original" in labels and "int8 weights" in labels and "bf16 weights" in labels
    assert page.screenshot("compression", tmp_path).stat().st_size > 10_000
