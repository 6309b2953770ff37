"""Records: every result type round-trips without pickle, runs replay to the same numbers, saves are safe."""

from __future__ import annotations

import json
import threading
import zipfile

import numpy as np
import pytest
import torch

from interp import InputError, next_token_predictions
from interp.attention import AttentionRun, HeadScoresRun, attention_patterns, compute_head_scores
from interp.attribution import Target, attribute, faithfulness
from interp.circuits import Component, ablate, direct_logit_attribution, patch_sweep
from interp.circuits.tasks import custom_task
from interp.generation import generate
from interp.lens import LogitLensRun, logit_lens
from interp.records import Bundle, RunStore, compare_runs, export_report, new_record, numbers_of, replay
from interp.serialise import dumps, loads

PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("STEERSCOPE_TRACKING_URI", raising=False)
    return RunStore()


def _every_result(model):
    from pathlib import Path

    from interp.attribution_batch import BatchItem, BatchResult
    from steering.meaning import token_effects, token_projections
    from steering.rlhf import (
        BestOfN,
        ComparisonRow,
        DPOLogEntry,
        DPOResult,
        InsideView,
        builtin_preferences,
        split_by_prompt,
        train_reward_model,
    )
    from steering.scores import SENTIMENT
    from steering.sweep import evaluate, sweep
    from tests.steering.test_vector import make

    attribution = attribute(model, PROMPT, Target.contrast(" Mary", " John"), "feature_ablation")
    task = custom_task(model, PROMPT, PROMPT.replace("John gave", "Mary gave"), " Mary", " John")
    vector = make(model, layers=(1,))
    train, test = split_by_prompt(builtin_preferences())
    return [
        next_token_predictions(model, PROMPT),
        generate(model, PROMPT, max_new_tokens=4, temperature=1.0, seed=1),
        attention_patterns(model, PROMPT),
        compute_head_scores(model, n_sequences=2, repeat_length=8),
        logit_lens(model, PROMPT, " Mary"),
        attribution,
        faithfulness(model, attribution),
        patch_sweep(model, task.clean, task.corrupted, task.metric, "heads"),
        ablate(model, task.clean, [Component("head", 1, 0)], task.metric, method="zero"),
        direct_logit_attribution(model, task.clean, task.metric),
        vector,
        evaluate(model, vector, 1, 1.0, SENTIMENT, prompts=("I love",), n_samples=1, max_new_tokens=4),
        sweep(model, vector, SENTIMENT, layers=[1], coefficients=[1.0], prompts=("I love",), n_samples=1, max_new_tokens=4),
        train_reward_model(model, train[:20], test[:6], layers=[1], steps=20),
        Bundle({"vector": vector, "note": "several parts"}),
        token_effects(model, vector, 1),
        token_projections(model, vector, 1, PROMPT),
        BatchResult(
            (BatchItem(2, "feature_ablation", attribution, 0.5, 0.1), BatchItem(3, "shap", None, error="too long")), 2, True
        ),
        # The RLHF results take minutes to make for real (their own tests do that); their shapes are what matter here.
        BestOfN(
            (1, 2),
            np.array([0.1, 0.3]),
            np.array([[0.1, 0.2], [0.1, 0.4]]),
            np.array([0.0, 0.19]),
            ("Hi",),
            (("a", "b"),),
            ((0.1, 0.3),),
        ),
        DPOResult(Path("adapter"), Path("merged"), (DPOLogEntry(1, 0.69, 0.0, 0.5), DPOLogEntry(2, 0.6, 0.2, 1.0)), 2, True, 3.5),
        ComparisonRow("best-of-8", 0.4, 0.3, 9.1, "8 samples"),
        InsideView((0, 1), np.array([0.01, 0.2]), np.array([float("nan"), 0.3])),
    ]


def test_every_result_type_round_trips_without_pickle(tiny_llama):
    for result in _every_result(tiny_llama):
        text, blob = dumps(result)
        assert b"pickle" not in blob and "__reduce__" not in text
        back = loads(text, blob)
        assert type(back) is type(result)
        assert np.array_equal(numbers_of(back), numbers_of(result), equal_nan=True), type(result).__name__


def test_records_refuse_types_outside_steerscope():
    bad = json.dumps({"__type__": "os.system", "command": "echo hi"})
    with pytest.raises(InputError, match="not a Steerscope result"):
        loads(bad, b"")
    with pytest.raises(InputError, match="damaged"):
        loads("{not json", b"")


@pytest.mark.parametrize(
    "spec",
    [
        AttentionRun(PROMPT, max_tokens=256),
        LogitLensRun(PROMPT, " Mary", k=5),
        HeadScoresRun(seed=0, n_sequences=2, repeat_length=8),
    ],
    ids=lambda spec: spec.kind,
)
def test_replay_gives_the_same_numbers_bitwise(tiny_llama, store, spec):
    result = spec.run(tiny_llama)
    run_id = store.save(new_record(tiny_llama, spec, result, note=f"replay test {spec.kind}"))
    outcome = replay(tiny_llama, store.load(run_id))
    assert outcome.matches and outcome.max_abs_difference == 0.0 and outcome.compared > 0


def test_a_record_kept_before_typed_runs_opens_but_says_it_cannot_replay(tiny_llama, store):
    import tempfile
    from pathlib import Path

    from interp.records.store import _record_from_document

    run_id = store.save(new_record(tiny_llama, AttentionRun(PROMPT), attention_patterns(tiny_llama, PROMPT)))
    with tempfile.TemporaryDirectory() as folder:
        document = json.loads((Path(store.client.download_artifacts(run_id, "", folder)) / "record.json").read_text())
    # As the previous version stored runs: inputs and settings in record.json, no spec.json.
    document.pop("params")
    old = {**document, "inputs": {"prompt": PROMPT}, "settings": {"max_tokens": 256}, "seed": None}
    record = _record_from_document(old, None, attention_patterns(tiny_llama, PROMPT), run_id)
    assert record.spec is None and record.settings == {"prompt": PROMPT, "max_tokens": 256, "seed": None}
    with pytest.raises(InputError, match="cannot be replayed"):
        replay(tiny_llama, record)


def test_replay_notices_a_changed_result(tiny_llama, store):
    import dataclasses

    result = attention_patterns(tiny_llama, PROMPT)
    tampered = dataclasses.replace(result, patterns=result.patterns + 1e-3)
    record = store.load(store.save(new_record(tiny_llama, AttentionRun(PROMPT, max_tokens=256), tampered)))
    outcome = replay(tiny_llama, record)
    assert not outcome.matches and outcome.max_abs_difference == pytest.approx(1e-3, rel=1e-3)


def test_replay_refuses_another_models_run(tiny_llama, tiny_gpt2, store):
    record = store.load(store.save(new_record(tiny_llama, AttentionRun(PROMPT), attention_patterns(tiny_llama, PROMPT))))
    with pytest.raises(InputError, match="load that model"):
        replay(tiny_gpt2, record)


def test_concurrent_saves_do_not_interleave(tiny_llama, store):
    results = {i: logit_lens(tiny_llama, PROMPT + " " * i) for i in range(6)}
    ids: dict[int, str] = {}
    barrier = threading.Barrier(6)

    def save(i):
        barrier.wait()
        ids[i] = store.save(new_record(tiny_llama, LogitLensRun(PROMPT + " " * i), results[i], note=f"thread {i}"))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(set(ids.values())) == 6
    listed = {r.run_id: r for r in store.list("logit_lens")}
    for i, run_id in ids.items():
        assert listed[run_id].note == f"thread {i}"
        assert np.array_equal(numbers_of(store.load(run_id).result), numbers_of(results[i]))


def test_a_failed_save_leaves_no_run_and_earlier_runs_intact(tiny_llama, store, monkeypatch):
    first = store.save(new_record(tiny_llama, AttentionRun(PROMPT), attention_patterns(tiny_llama, PROMPT), note="kept"))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.client, "log_param", broken)
    with pytest.raises(InputError, match="disk is full"):
        store.save(new_record(tiny_llama, AttentionRun("x"), attention_patterns(tiny_llama, "x"), note="lost"))
    monkeypatch.undo()
    assert [r.note for r in store.list()] == ["kept"]
    assert store.load(first).note == "kept"


def test_read_only_data_folder_gets_a_clear_message(tiny_llama, tmp_path, monkeypatch):
    import os

    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    monkeypatch.setenv("STEERSCOPE_DATA", str(folder / "data"))
    try:
        if os.geteuid() == 0:  # root ignores permissions: a file where the folder should be still fails
            folder.chmod(0o700)
            (folder / "data").write_text("not a folder")
        with pytest.raises(InputError, match="Could not"):
            RunStore().save(new_record(tiny_llama, AttentionRun(PROMPT), attention_patterns(tiny_llama, PROMPT)))
    finally:
        folder.chmod(0o700)


def test_compare_and_export(tiny_llama, store):
    a = store.load(store.save(new_record(tiny_llama, LogitLensRun(PROMPT, " Mary"), logit_lens(tiny_llama, PROMPT, " Mary"))))
    b = store.load(store.save(new_record(tiny_llama, LogitLensRun(PROMPT, " John"), logit_lens(tiny_llama, PROMPT, " John"))))
    comparison = compare_runs(a, b)
    assert ("target", '" Mary"', '" John"') in comparison.settings_diff
    assert comparison.numbers_compared > 0 and comparison.max_abs_difference > 0
    archive = zipfile.ZipFile(__import__("io").BytesIO(export_report([a, b])))
    names = set(archive.namelist())
    assert {
        "report.md",
        "report.tex",
        "run1_logit_lens/record.json",
        "run1_logit_lens/figure.png",
        "run2_logit_lens/result.json",
    } <= names
    report = archive.read("report.md").decode()
    assert "To reproduce" in report and a.run_id in report
    assert "\\includegraphics" in archive.read("report.tex").decode()
    with pytest.raises(InputError, match="same kind"):
        compare_runs(
            a,
            store.load(store.save(new_record(tiny_llama, AttentionRun(PROMPT), attention_patterns(tiny_llama, PROMPT)))),
        )


def test_reports_draw_runs_made_of_several_parts(tiny_llama):
    from interp.circuits import attribution_patch
    from interp.records import figure_png
    from steering.rlhf import DPOLogEntry
    from steering.scores import SENTIMENT
    from steering.sweep import evaluate, sweep
    from tests.steering.test_vector import make

    task = custom_task(tiny_llama, PROMPT, PROMPT.replace("John gave", "Mary gave"), " Mary", " John")
    vector = make(tiny_llama, layers=(0, 1))
    options = {"prompts": ("I love",), "n_samples": 1, "max_new_tokens": 4}
    runs = {
        "patching": Bundle(
            {
                "activation": patch_sweep(tiny_llama, task.clean, task.corrupted, task.metric, "heads"),
                "attribution": attribution_patch(tiny_llama, task.clean, task.corrupted, task.metric, "heads"),
            }
        ),
        "steering_sweep": Bundle(
            {"vector": vector, "sweep": sweep(tiny_llama, vector, SENTIMENT, layers=[0, 1], coefficients=[1.0, 2.0], **options)}
        ),
        "steering_evaluation": Bundle(
            {"vector": vector, "evaluation": evaluate(tiny_llama, vector, 1, 2.0, SENTIMENT, **options)}
        ),
        "dpo": Bundle({"log": [DPOLogEntry(1, 0.69, 0.0, 0.5), DPOLogEntry(2, 0.5, 0.3, 1.0)], "steps_done": 2}),
    }
    for kind, result in runs.items():
        png = figure_png(result, kind)
        assert png is not None and png.startswith(b"\x89PNG"), kind


def test_report_figures_tick_index_axes_with_whole_numbers_only(tiny_llama, monkeypatch):
    """Layers, heads and token positions are counted: a tick at 0.5 or 2.5 on such an axis names nothing."""
    import matplotlib.pyplot as plt

    from interp.records import figure_png

    drawn = []
    really_close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (drawn.append(figure), really_close(figure)))
    results = {
        "head_scores": compute_head_scores(tiny_llama, n_sequences=2, repeat_length=8),
        "attention": attention_patterns(tiny_llama, PROMPT),
        "logit_lens": logit_lens(tiny_llama, PROMPT, " Mary"),
    }
    for kind, result in results.items():
        assert figure_png(result, kind) is not None, kind
    images = [axis for figure in drawn for axis in figure.axes if axis.get_images()]
    assert images
    for axis in images:
        for ticks in (axis.get_xticks(), axis.get_yticks()):
            assert all(float(t).is_integer() for t in ticks), (axis.get_title(), list(ticks))


def test_record_keeps_versions_model_and_times(tiny_llama, store):
    record = store.load(
        store.save(
            new_record(
                tiny_llama,
                HeadScoresRun(seed=0, n_sequences=2, repeat_length=8),
                compute_head_scores(tiny_llama, n_sequences=2, repeat_length=8),
                note="n",
            )
        )
    )
    assert record.weights_sha256 == tiny_llama.info.weights_sha256 and record.model_name == tiny_llama.info.name
    assert "torch" in record.versions and "transformers" in record.versions
    assert record.started and record.finished and record.spec.seed == 0 and record.settings["seed"] == 0
    assert torch.is_tensor(torch.as_tensor(record.result.induction))


def test_compare_runs_on_different_prompts_compares_matching_positions_and_names_the_rest(tiny_llama, store):
    longer = PROMPT + " her"
    a = store.load(store.save(new_record(tiny_llama, LogitLensRun(PROMPT, " Mary"), logit_lens(tiny_llama, PROMPT, " Mary"))))
    b = store.load(store.save(new_record(tiny_llama, LogitLensRun(longer, " Mary"), logit_lens(tiny_llama, longer, " Mary"))))
    comparison = compare_runs(a, b)
    # The old comparison gave up on the different shapes: "0 numbers compared; largest difference nan".
    assert comparison.numbers_compared > 0 and np.isfinite(comparison.max_abs_difference)
    assert comparison.positions_matched == len(a.result.tokens)
    assert comparison.max_abs_difference < 1e-5  # a causal model: the shared prefix reads the same
    assert "positions where both prompts have the same token" in comparison.describe()
    untargeted = store.load(store.save(new_record(tiny_llama, LogitLensRun(longer), logit_lens(tiny_llama, longer))))
    partial = compare_runs(a, untargeted)
    assert partial.numbers_compared > 0
    assert any("target_probs" in why and "one run only" in why for why in partial.not_compared)
    assert "Not compared: " in partial.describe() and "nan" not in partial.describe()


def _comparison_of_five_methods(model):
    import dataclasses

    from interp.attribution.runs import AttributionComparison, CheckedAttribution

    one = attribute(model, PROMPT, Target.contrast(" Mary", " John"), "feature_ablation")
    check = faithfulness(model, one)
    names = ("shap", "integrated_gradients", "feature_ablation", "shapley_sampling", "gradient_x_input")
    return names, AttributionComparison(
        tuple(
            CheckedAttribution(
                dataclasses.replace(one, method=name, scores=one.scores.copy()),
                dataclasses.replace(
                    check,
                    method=name,
                    fractions=check.fractions.copy(),
                    deletion=check.deletion.copy(),
                    insertion=check.insertion.copy(),
                ),
            )
            for name in names
        )
    )


def test_report_has_result_numbers_axis_titles_and_a_panel_per_method(tiny_llama, store):
    import io

    from interp.attribution.runs import MethodComparison
    from interp.records.report import _main_arrays
    from interp.records.summary import summary_rows

    names, comparison = _comparison_of_five_methods(tiny_llama)
    task = custom_task(tiny_llama, PROMPT, PROMPT.replace("John gave", "Mary gave"), " Mary", " John")
    patching = patch_sweep(tiny_llama, task.clean, task.corrupted, task.metric, "heads")
    long_prompts = tuple(f"prompt number {i} with some words in it" for i in range(40))
    records = [
        new_record(tiny_llama, AttentionRun(PROMPT), attention_patterns(tiny_llama, PROMPT)),
        new_record(tiny_llama, MethodComparison(PROMPT, names, Target.contrast(" Mary", " John")), comparison),
        new_record(tiny_llama, LogitLensRun("x " * 150, " Mary"), logit_lens(tiny_llama, PROMPT, " Mary")),
    ]
    records = [store.load(store.save(r)) for r in records]
    # A record whose settings hold a long list of prompts (as a steering sweep's do).
    records.append(dataclasses_replace_settings(records[2], {"prompts": list(long_prompts)}))
    archive = zipfile.ZipFile(io.BytesIO(export_report(records)))
    report, tex = archive.read("report.md").decode(), archive.read("report.tex").decode()
    # Result numbers with units, in both documents.
    attention_rows = summary_rows(records[0].result)
    assert attention_rows and f"{attention_rows[0].value:.4g}" in report and f"{attention_rows[0].value:.4g}" in tex
    assert "attention weight (0-1)" in report and "logit difference" in report and "| result | value | unit | where |" in report
    assert "result & value & unit & where" in tex
    # LaTeX tables wrap (p{} columns) instead of running off the page; long cells end with an ellipsis.
    assert "\\begin{tabular}{ll}" not in tex and "p{0.62\\linewidth}" in tex
    assert "x x x" in tex and "\\ldots{}" in tex
    # Long prompt lists keep whole items, then say how many more.
    line = next(line for line in report.splitlines() if line.startswith("| prompts |"))
    assert "… and " in line and " more]" in line
    kept = line.split("[", 1)[1].split(", … and")[0]
    assert all(item.strip().strip('"') in long_prompts for item in kept.split(", "))
    # A figure per run; axes named after the result's own labels; the attention head named; one panel per method.
    for index, record in enumerate(records, start=1):
        assert archive.read(f"run{index}_{record.kind}/figure.png").startswith(b"\x89PNG")
    for result in (records[0].result, comparison, patching, records[2].result):
        for _title, _array, axes, _ticks, _unit in _main_arrays(result):
            assert "row" not in axes and "column" not in axes, axes
    (attention,) = _main_arrays(records[0].result)
    assert "head 0" in attention[0] and attention[2] == ("key position", "query position")
    assert _main_arrays(patching)[0][2] == ("head", "layer") and _main_arrays(patching)[0][4]
    panels = _main_arrays(comparison)
    assert [panel[0].split()[0] for panel in panels] == list(names)  # "shap attribution", ...: 5 panels, not 4
    assert all(panel[2][1] == "logit difference" for panel in panels)


def dataclasses_replace_settings(record, settings):
    import dataclasses

    class WithSettings(type(record)):
        @property
        def settings(self):
            return settings

    fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    return WithSettings(**fields)


def test_experiments_page_shows_an_opened_runs_results_and_compares_different_prompts(tiny_llama, tiny_llama_dir, store):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ui.model import KEY_CHOICE, KEY_CUSTOM, OTHER_CHOICE
    from ui.records import run_store

    longer = PROMPT + " her"
    ids = [
        store.save(new_record(tiny_llama, LogitLensRun(p, " Mary"), logit_lens(tiny_llama, p, " Mary"), note=p[-6:]))
        for p in (PROMPT, longer)
    ]
    run_store.clear()
    try:
        app = AppTest.from_file(str(Path(__file__).resolve().parents[2] / "app.py"), default_timeout=180)
        app.session_state[KEY_CHOICE] = OTHER_CHOICE
        app.session_state[KEY_CUSTOM] = str(tiny_llama_dir)
        app.run()
        app.switch_page("pages/experiments.py").run()
        assert not app.exception, app.exception
        app.multiselect(key="exp_pick").set_value([ids[0]]).run()
        assert not app.exception and not app.error
        results = next(frame.value for frame in app.dataframe if "unit" in frame.value.columns)
        assert "probability" in set(results["unit"]) and len(results) > 0
        assert app.get("image"), "the run's figure is shown"
        app.multiselect(key="exp_pick").set_value(ids).run()
        assert not app.exception and not app.error
        caption = next(c.value for c in app.caption if c.value.startswith("Results:"))
        assert "nan" not in caption and "0 numbers compared" not in caption
        assert "same token" in caption
    finally:
        run_store.clear()
