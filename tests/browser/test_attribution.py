"""The attribution page in a real browser: upload a CSV, run a batch, download the results."""

from __future__ import annotations

import csv
import io

CSV = (
    "prompt,target\n"
    "The Eiffel Tower is in the city of, Paris\n"
    '"When Mary and John went to the store, John gave a drink to", Mary\n'
)


def test_upload_run_and_download_a_batch(page, tmp_path):
    page.open("attribution")
    tab = page.tab
    tab.get_by_role("tab", name="A file of prompts").click()
    source = tmp_path / "prompts.csv"
    source.write_text(CSV)
    tab.locator("input[type=file]").first.set_input_files(str(source))
    page.wait_idle()
    tab.get_by_text("2 prompt(s) read").wait_for()
    tab.get_by_role("button", name="Run batch").click()
    page.wait_idle(300)
    tab.get_by_text("4 of 4 runs done").wait_for()
    with tab.expect_download() as download_info:
        tab.get_by_role("button", name="Download results (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(download_info.value.path().read_text())))
    assert [row["line"] for row in rows] == ["2", "2", "3", "3"]
    assert all(row["top_tokens"] for row in rows)
    assert page.screenshot("attribution-batch", tmp_path).stat().st_size > 10_000


def test_one_prompt_shows_methods_side_by_side(page, tmp_path):
    page.open("attribution")
    page.tab.get_by_role("button", name="Run attribution").click()
    page.wait_idle(300)
    page.tab.get_by_text("Which method is faithful here?").wait_for()
    assert page.screenshot("attribution", tmp_path).stat().st_size > 10_000
