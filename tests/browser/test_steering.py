"""The steering page in a real browser: moving the coefficient slider changes the steered text."""

from __future__ import annotations


def steered_texts(tab) -> list[str]:
    return tab.locator('[data-testid="stText"]').all_inner_texts()[1::2]


def test_moving_the_coefficient_slider_changes_the_steered_text(page, tmp_path):
    page.open("steering")
    tab = page.tab
    tab.get_by_text("Steered (layer").wait_for()
    before = steered_texts(tab)
    slider = tab.get_by_role("slider", name="Coefficient")
    slider.focus()
    for _ in range(4):  # -2.0 in steps of 0.5: from the default 3 down to 1
        slider.press("ArrowLeft")
    page.wait_idle(300)
    tab.get_by_text("coefficient +1)").first.wait_for()
    after = steered_texts(tab)
    assert after and after != before
    assert page.screenshot("steering", tmp_path).stat().st_size > 10_000
