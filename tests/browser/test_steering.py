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


RECORD_STEERED_HEADINGS = """() => {
    window.__steered = [];
    window.__cursor = false;
    const look = () => {
        for (const el of document.querySelectorAll('[data-testid="stMarkdownContainer"]')) {
            const text = el.innerText.trim();
            if (text.startsWith('Steered') && window.__steered[window.__steered.length - 1] !== text) window.__steered.push(text);
        }
        for (const el of document.querySelectorAll('[data-testid="stText"]')) {
            if (el.innerText.includes('\u258c')) window.__cursor = true;
        }
    };
    new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_two_quick_slider_moves_stream_only_the_latest_settings_text(page):
    page.open("steering")
    tab = page.tab
    tab.get_by_text("Steered (layer").first.wait_for()
    page.wait_idle()
    tab.evaluate(RECORD_STEERED_HEADINGS)
    slider = tab.get_by_role("slider", name="Coefficient")
    slider.focus()
    slider.press("ArrowRight")  # 3 -> 3.5 starts streaming ...
    slider.press("ArrowRight")  # ... and 3.5 -> 4 right away: the 3.5 request is stale
    page.wait_idle(300)
    tab.get_by_text("Steered (layer 4, coefficient +4)", exact=True).wait_for()
    seen = tab.evaluate("window.__steered")
    assert tab.evaluate("window.__cursor"), "the steered text must appear token by token (with a cursor)"
    assert any("coefficient +4) — writing" in s for s in seen), seen
    assert "Steered (layer 4, coefficient +3.5)" not in seen, f"the stale setting's samples were finished: {seen}"
    assert seen[-1] == "Steered (layer 4, coefficient +4)", seen


def test_stop_keeps_what_was_written_and_writes_no_more(page):
    page.open("steering")
    tab = page.tab
    tab.get_by_text("Steered (layer").first.wait_for()
    page.wait_idle()
    slider = tab.get_by_role("slider", name="Coefficient")
    slider.focus()
    slider.press("ArrowLeft")  # a setting not computed yet: it streams
    tab.get_by_role("button", name="Stop").click()
    page.wait_idle(300)
    tab.get_by_text("Stopped. Move a slider, or press Generate, to write again.").wait_for()
    tab.get_by_text("— stopped").wait_for()
    assert tab.get_by_role("button", name="Generate").is_visible()
    assert not tab.get_by_text("Behaviour (").is_visible()  # no scores for samples that were cut short
