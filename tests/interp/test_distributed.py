"""Batch attribution on Ray workers: the command line's --ray gives the in-process output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interp.__main__ import main
from interp.attribution_batch import batch_frame, run_attribution_batch
from interp.prompt_files import read_prompt_file

ROOT = Path(__file__).resolve().parents[2]
CSV = (
    b"prompt,target\n"
    b"When Mary and John went to the store, Mary\n"
    b"I love dogs because,\n"
    b"The cat sat on the, mat\n"  # ' mat' is several tokens here: a row that fails, on a worker as in-process
    b"Paris is the capital of,\n"
)


def test_attribution_on_ray_writes_the_in_process_output(tiny_llama, tiny_llama_dir, tmp_path):
    source = tmp_path / "prompts.csv"
    source.write_bytes(CSV)
    out, out_json = tmp_path / "results.csv", tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "interp", "attribute", str(source), "--method", "ablation", "--method", "svs",
         "--model", str(tiny_llama_dir), "--out", str(out), "--json", str(out_json), "--ray", "auto", "--ray-workers", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, STEERSCOPE_DATA=str(tmp_path / "data")),  # a traceback log would go here, not the repo's data/
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr  # 1: the multi-token target's rows failed, as in-process
    assert "[ray] 2 worker(s)" in completed.stderr and "8 of 8 runs" in completed.stderr
    assert "wrote 6 result(s)" in completed.stderr and "line 4 (feature_ablation)" in completed.stderr

    methods = ["feature_ablation", "shapley_sampling"]
    items = run_attribution_batch(tiny_llama, read_prompt_file("prompts.csv", CSV), methods).items
    direct, from_ray = batch_frame(items), pd.read_csv(out)
    text = ["line", "prompt", "method", "target", "tokens", "evaluations", "error"]
    assert from_ray[text].fillna("").astype(str).equals(direct[text].fillna("").astype(str))  # same rows, same order
    for column in ("target_value", "comprehensiveness", "sufficiency"):
        np.testing.assert_allclose(from_ray[column].astype(float), direct[column].astype(float), atol=2e-6, equal_nan=True)
    for ours, theirs in zip(from_ray["scores"], direct["scores"], strict=True):  # CSV numbers are rounded to 6 places
        if isinstance(theirs, str):
            np.testing.assert_allclose(json.loads(ours), json.loads(theirs), atol=2e-6)
    # The JSON keeps full precision: worker and caller differ only by float rounding (thread count).
    full = json.loads(out_json.read_text())
    assert [(e["line"], e["method"], e["error"]) for e in full] == [(i.line, i.method, i.error) for i in items]
    for entry, item in zip(full, items, strict=True):
        if item.attribution is not None:
            np.testing.assert_allclose(entry["scores"], item.attribution.scores, rtol=1e-5, atol=1e-6)
            assert entry["token_ids"] == list(item.attribution.token_ids)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ray", "a b"], "--ray takes 'auto' or a cluster address"),
        (["--ray-workers", "2"], "--ray-workers needs --ray"),
        (["--ray", "auto", "--ray-workers", "0"], "--ray-workers must be at least 1"),
    ],
)
def test_bad_ray_options_are_explained_before_anything_starts(tiny_llama_dir, tmp_path, capsys, args, message):
    source = tmp_path / "p.csv"
    source.write_bytes(CSV)
    out = tmp_path / "o.csv"
    code = main(["attribute", str(source), "--method", "ablation", "--model", str(tiny_llama_dir), "--out", str(out), *args])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()
