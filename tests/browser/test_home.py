"""The home page in a real browser: type a prompt, see the predictions."""

from __future__ import annotations


def test_typing_a_prompt_shows_its_predictions(page, tmp_path):
    page.open()
    page.tab.get_by_text("Next-token predictions").wait_for()
    prompt = page.tab.get_by_label("Prompt")
    prompt.fill("The capital of France is")
    prompt.press("Control+Enter")
    page.wait_idle()
    # The bar chart is SVG, so its labels are real text in the page.
    page.tab.locator(".js-plotly-plot text", has_text="Paris").first.wait_for()
    page.tab.get_by_text("The prompt as the model reads it: 5 tokens").wait_for()
    assert page.screenshot("home", tmp_path).stat().st_size > 10_000


RECORD_CURSOR = """() => {
    window.__cursor = false;
    new MutationObserver(() => {
        for (const el of document.querySelectorAll('[data-testid="stText"]')) {
            if (el.innerText.includes('\u258c')) window.__cursor = true;
        }
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_the_model_writes_on_token_by_token(page):
    page.open()
    tab = page.tab
    tab.get_by_text("Let it write").wait_for()
    tab.evaluate(RECORD_CURSOR)
    tab.get_by_role("button", name="Write").click()
    page.wait_idle(300)
    written = [t for t in tab.locator('[data-testid="stText"]').all_inner_texts() if t.startswith("The Eiffel Tower")]
    assert tab.evaluate("window.__cursor"), "the text must appear token by token"
    assert written and len(written[-1]) > len("The Eiffel Tower is in the city of"), written
    assert "\u258c" not in written[-1]  # finished: no cursor left
