"""Records in a real browser: keep a run on the Attention page, find it on the Experiments page."""

from __future__ import annotations


def test_a_kept_run_shows_up_on_the_experiments_page(page, tmp_path):
    page.open("attention")
    tab = page.tab
    tab.locator(".gtitle", has_text="Head L0.H0").first.wait_for()  # the page has finished its first run
    page.wait_idle()
    # Each tab has its own "Keep this run" box; tabs whose results are already cached on the server
    # render theirs too (hidden), so always pick the visible one, in the open "Heads" tab.
    note = tab.get_by_label("Note (what you were checking)", exact=True).locator("visible=true").first
    for _ in range(3):  # open the box; a rerun landing mid-click can close it again
        if note.is_visible():
            break
        tab.locator('[data-testid="stExpander"] summary:visible', has_text="Keep this run").first.click()
        tab.wait_for_timeout(700)
    note.wait_for(state="visible")
    note.fill("browser: which heads look back")
    note.press("Enter")
    page.wait_idle()
    tab.get_by_role("button", name="Save run").locator("visible=true").first.click()
    page.wait_idle()
    tab.get_by_text("Saved as run").wait_for()
    page.open("experiments")
    tab.get_by_text("Select one run to open").wait_for()
    assert tab.locator('[data-testid="stDataFrame"]').count() >= 1
    picker = tab.locator('[data-testid="stMultiSelect"] input').first
    picker.click()
    picker.fill("browser")
    picker.press("Enter")
    picker.press("Escape")
    page.wait_idle()
    tab.get_by_role("button", name="Replay").first.click()
    page.wait_idle(300)
    tab.get_by_text("Same results (bitwise)").wait_for()
    assert page.screenshot("experiments", tmp_path).stat().st_size > 10_000
