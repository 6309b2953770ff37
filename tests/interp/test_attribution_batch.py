"""Batch attribution: progress, stopping with partial results, exports, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from interp.attribution import FeatureAblation, Target, attribute
from interp.attribution_batch import BatchAttribution, batch_frame, batch_json, driving_tokens, run_attribution_batch
from interp.prompt_files import read_prompt_file

ROOT = Path(__file__).resolve().parents[2]
CSV = (
    b"prompt,target\n"
    b"When Mary and John went to the store, Mary\n"
    b'=HYPERLINK("x") and John went to the, store\n'
    b"I love dogs because,\n"
)


def test_batch_reports_progress_and_matches_single_runs(tiny_llama):
    prompts = read_prompt_file("p.csv", CSV)
    seen = []
    result = run_attribution_batch(tiny_llama, prompts, ["feature_ablation", "shapley_sampling"], on_progress=seen.append)
    assert [p.done for p in seen] == list(range(1, 7)) and seen[-1].total == 6
    assert seen[0].eta_seconds is not None and seen[-1].eta_seconds == 0
    single = attribute(tiny_llama, prompts.rows[0].prompt, Target.next_token(" Mary"), "shapley_sampling")
    batched = next(i for i in result.items if i.line == 2 and i.method == "shapley_sampling").attribution
    assert (batched.scores == single.scores).all()


def test_stopping_keeps_the_rows_already_done(tiny_llama):
    prompts = read_prompt_file("p.csv", CSV)
    kept = []
    result = run_attribution_batch(
        tiny_llama, prompts, ["feature_ablation"], on_item=kept.append, should_stop=lambda: len(kept) >= 2
    )
    assert result.stopped and len(result.items) == 2 and kept == list(result.items)


def test_the_batch_spec_holds_its_rows_reports_progress_and_stops(tiny_llama):
    prompts = read_prompt_file("p.csv", CSV)
    spec = BatchAttribution(prompts.rows, (FeatureAblation(),))
    assert spec.total == 3 and spec.rows == prompts.rows  # it replays without the file
    messages, kept = [], []
    result = spec.run(tiny_llama, lambda fraction, text: messages.append((fraction, text)), on_item=kept.append)
    assert [round(f, 2) for f, _ in messages] == [0.33, 0.67, 1.0] and "3 of 3 runs" in messages[-1][1]
    assert not result.stopped and kept == list(result.items)
    direct = run_attribution_batch(tiny_llama, prompts, ["feature_ablation"])
    assert list(batch_frame(result.items)["scores"]) == list(batch_frame(direct.items)["scores"])
    stopped = spec.run(tiny_llama, should_stop=lambda: True)
    assert stopped.stopped and stopped.items == ()


def test_exports_are_spreadsheet_safe_and_complete(tiny_llama):
    from interp.spreadsheet import to_csv_bytes

    items = run_attribution_batch(tiny_llama, read_prompt_file("p.csv", CSV), ["feature_ablation"]).items
    frame = batch_frame(items)
    csv_text = to_csv_bytes(frame).decode()
    assert "'=HYPERLINK" in csv_text and "\n=HYPERLINK" not in csv_text and ",=HYPERLINK" not in csv_text
    records = json.loads(batch_json(items))
    assert len(records) == 3 and all(len(r["tokens"]) == len(r["scores"]) for r in records)
    drivers = driving_tokens(items)
    assert set(drivers.columns) == {"method", "token", "times_in_top", "mean_score"} and drivers["times_in_top"].max() >= 1


def test_command_line_batch_writes_the_same_numbers(tiny_llama, tiny_llama_dir, tmp_path):
    source = tmp_path / "prompts.csv"
    source.write_bytes(CSV)
    out, out_json = tmp_path / "results.csv", tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "interp", "attribute", str(source), "--method", "ablation", "--model", str(tiny_llama_dir),
         "--out", str(out), "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "3 of 3 runs" in completed.stderr and "wrote 3 result(s)" in completed.stderr
    from_cli = pd.read_csv(out)
    direct = batch_frame(run_attribution_batch(tiny_llama, read_prompt_file("prompts.csv", CSV), ["feature_ablation"]).items)
    assert list(from_cli["scores"]) == list(direct["scores"])
    assert len(json.loads(out_json.read_text())) == 3


@pytest.mark.parametrize(
    "args, message",
    [(["--method", "lime"], "Unknown method 'lime'"), (["--method", "shap", "--budget", "5"], "over the budget of 5")],
)
def test_command_line_explains_bad_input(tiny_llama_dir, tmp_path, args, message):
    source = tmp_path / "p.csv"
    source.write_bytes(CSV)
    completed = subprocess.run(
        [sys.executable, "-m", "interp", "attribute", str(source), *args,
         "--model", str(tiny_llama_dir), "--out", str(tmp_path / "o.csv")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
