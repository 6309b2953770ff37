"""The Reward & RLHF page in a real browser: train a reward model, score a reply, see the token heatmap."""

from __future__ import annotations


def test_score_a_reply_and_see_which_words_earned_the_reward(page, tmp_path, tiny_llama_dir):
    page.open("rlhf")
    tab = page.tab
    # A tiny checkpoint keeps the browser test quick: pick it in the sidebar like a user would.
    tab.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    tab.get_by_role("option", name="Other: a folder, a .gguf file or a hub id").click()
    box = tab.get_by_label("Folder, .gguf path or hub id", exact=True)
    box.fill(str(tiny_llama_dir))
    box.press("Enter")
    page.wait_idle()
    tab.get_by_role("button", name="Train the reward model").click()
    page.wait_idle(300)
    tab.get_by_text("Held-out pairwise accuracy").wait_for()
    reply = tab.get_by_role("textbox", name="Reply", exact=True)
    reply.fill("Of course, I would be glad to help you.")
    reply.press("Control+Enter")
    page.wait_idle()
    # The reply, token by token, coloured by its share of the reward. The default reply's chips are on
    # the page before the rerun, so wait for the new reply's chips rather than reading the first ones seen.
    tab.wait_for_function(
        "() => [...document.querySelectorAll('span[title]')].map(s => s.innerText).join('').includes('glad␣to␣help␣you')",
        timeout=120_000,
    )
    tab.get_by_text("Which words earned the reward").wait_for()
    assert page.screenshot("rlhf", tmp_path).stat().st_size > 10_000
