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
