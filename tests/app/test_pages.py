"""Streamlit AppTest: each page opens on the real default model and shows its main result."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui.model import OTHER_CHOICE  # the sidebar's own label for 'type a folder, .gguf or hub id'

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")

pytestmark = pytest.mark.real_model


def open_app() -> AppTest:
    return open_app_with()


def test_home_shows_predictions_for_a_prompt():
    app = open_app()
    app.text_area(key="home_prompt").input("The capital of France is").run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table.columns[:3]) == ["rank", "token", "probability (%)"]
    assert table["token"].iloc[0] == "␣Paris"
    assert table["probability (%)"].is_monotonic_decreasing
    assert 0 < table["probability (%)"].sum() <= 100


# After its first run, AppTest re-runs only the current page of an st.navigation app, not app.py
# (so sidebar widgets vanish from its tree). Model-picker tests therefore set the choice before
# the first run and read the page's own message about the model.
def open_app_with(**state: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=180)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    assert not app.exception, app.exception
    return app


def test_home_explains_an_empty_custom_model_choice():
    app = open_app_with(model_choice=OTHER_CHOICE)
    assert any("Type a checkpoint folder" in warning.value for warning in app.warning)


def test_home_reports_a_bad_model_path_without_a_traceback():
    app = open_app_with(model_choice=OTHER_CHOICE, model_custom_spec="/no/such/checkpoint")
    assert any("Nothing at /no/such/checkpoint" in warning.value for warning in app.warning)
    assert any("Nothing at /no/such/checkpoint" in error.value for error in app.sidebar.error)


def test_home_loads_a_checkpoint_folder_typed_in_the_sidebar(tiny_llama_dir):
    app = open_app_with(model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir))
    assert not app.warning
    card = app.dataframe[1].value
    assert card.iloc[0, 1] == tiny_llama_dir.name


def test_an_app_started_on_another_model_names_it_in_the_sidebar(tiny_llama_dir, monkeypatch):
    monkeypatch.setenv("STEERSCOPE_MODEL", str(tiny_llama_dir))
    app = open_app_with()
    picker = app.sidebar.selectbox(key="model_choice")
    assert picker.options[0] == f"{tiny_llama_dir.name} (from STEERSCOPE_MODEL)"
    assert app.dataframe[1].value.iloc[0, 1] == tiny_llama_dir.name  # and that model is the one loaded


def frame_with(app: AppTest, column: str):
    """The first table on the page that has ``column``."""
    return next(frame.value for frame in app.dataframe if column in frame.value.columns)


def open_page(path: str, **state: str) -> AppTest:
    app = open_app_with(**state)
    app.switch_page(path).run()
    assert not app.exception, app.exception
    return app


def test_attention_page_shows_heads_scores_and_lens():
    app = open_page("pages/attention.py")
    assert [tab.label for tab in app.tabs] == ["Heads", "Head types", "Logit lens"]
    assert not app.error
    app.number_input(key="attn_layer").set_value(18).run()
    app.number_input(key="attn_head").set_value(6).run()
    assert not app.exception and not app.error
    top = app.dataframe[0].value
    assert top.iloc[0]["score"] > 0.4  # the strongest induction head, from the cached probe
    assert any("Open head L18.H6" in m.value for m in app.markdown)  # the Head types tab shows the open head too
    app.text_input(key="attn_lens_target").input(" dog").run()
    assert not app.exception and not app.error


def test_attention_page_refuses_an_overlong_prompt_with_a_message():
    app = open_page("pages/attention.py")
    app.text_area(key="attn_prompt").input("word " * 300).run()
    assert not app.exception
    assert [error.value for error in app.error] == ["The prompt is 301 tokens; this view shows at most 256. Shorten it."]


def test_attention_page_shows_html_in_a_prompt_as_text():
    app = open_page("pages/attention.py")
    app.text_area(key="attn_prompt").input("<b>bold</b> <script>alert(1)</script> **stars**").run()
    assert not app.exception and not app.error
    chips = "".join(element.proto.body for element in app.get("html"))
    assert "<script" not in chips and "<b>" not in chips
    shown = html.unescape("".join(re.findall(r">([^<]*)</span>", chips)))
    assert shown == "<b>bold</b>␣<script>alert(1)</script>␣**stars**"


def test_attribution_page_runs_two_methods_on_one_prompt():
    app = open_page("pages/attribution.py")
    app.multiselect(key="attr_methods").set_value(["feature_ablation", "gradient_x_input"]).run()
    app.button(key="attr_run").click().run()
    assert not app.exception and not app.error
    summary = frame_with(app, "comprehensiveness (higher = better)")
    assert list(summary["method"]) == ["Feature ablation", "Gradient × input"]
    assert summary["comprehensiveness (higher = better)"].notna().all()
    assert len(app.get("html")) >= 2  # one row of token chips per method


CSV_WITH_PROBLEMS = (
    b"prompt,target,notes\n"
    b"The Eiffel Tower is in the city of, Paris,landmark\n"
    b",,empty prompt\n"
    b"When Mary and John went to the store John gave a drink to, Mary,ioi\n"
)


def test_attribution_page_reads_an_upload_and_lists_skipped_rows():
    app = open_page("pages/attribution.py")
    app.file_uploader(key="attr_upload").upload("prompts.csv", CSV_WITH_PROBLEMS, "text/csv").run()
    assert not app.exception and not app.error
    shown = [s.value.replace("\\", "") for s in app.success]  # markdown-escaped user text
    assert any("prompts.csv: 2 prompt(s) read, 1 row(s) skipped; columns ignored: notes" in text for text in shown), shown
    skipped = frame_with(app, "reason")
    assert list(skipped["line"]) == [3] and skipped["reason"][0] == "empty prompt"
    app.multiselect(key="attr_batch_methods").set_value(["feature_ablation"]).run()
    app.button(key="attr_batch_run").click().run()
    assert not app.exception and not app.error
    results = frame_with(app, "top_tokens")
    assert list(results["line"]) == [2, 4]
    assert results["top_tokens"].str.len().gt(0).all()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("prompts.csv", b"text,target\nhello,world\n", "no 'prompt' column (found 'text', 'target')"),
        ("prompts.csv", "prompt\ncaf\u00e9\n".encode("latin-1"), "line 2: the file is not UTF-8"),
        ("prompts.jsonl", b'{"prompt": "ok"}\n{"prompt": oops}\n', "line 2, column 12: not valid JSON"),
        ("prompts.txt", b"\n\n", "is empty"),
    ],
)
def test_attribution_page_explains_a_bad_upload(name, content, message):
    app = open_page("pages/attribution.py")
    app.file_uploader(key="attr_upload").upload(name, content).run()
    assert not app.exception
    assert any(message in error.value for error in app.error), [e.value for e in app.error]


def test_attribution_results_stay_on_screen_and_are_kept_as_the_methods_compared(tiny, tiny_llama, run_store):
    from interp.records import replay

    app = open_page("pages/attribution.py", **tiny)
    app.multiselect(key="attr_methods").set_value(["feature_ablation", "gradient_x_input"]).run()
    app.button(key="attr_run").click().run()
    assert not app.exception and not app.error
    app.multiselect(key="attr_methods").set_value(["shap"]).run()  # changed after the run: the results stay
    assert list(frame_with(app, "comprehensiveness (higher = better)")["method"]) == ["Feature ablation", "Gradient × input"]
    app.button(key="attr_keep_save").click().run()
    assert not app.exception and not app.error
    (summary,) = run_store().list()
    record = run_store().load(summary.run_id)
    assert record.kind == "attribution_comparison"
    assert [m.name for m in record.spec.methods] == ["feature_ablation", "gradient_x_input"]
    assert replay(tiny_llama, record).matches


def test_a_finished_attribution_batch_is_kept_with_its_rows(tiny, tiny_llama, run_store):
    from interp.records import replay

    app = open_page("pages/attribution.py", **tiny)
    app.file_uploader(key="attr_upload").upload("p.txt", b"I love dogs because\nThe store is\n", "text/plain").run()
    app.multiselect(key="attr_batch_methods").set_value(["feature_ablation"]).run()
    app.button(key="attr_batch_run").click().run()
    assert not app.exception and not app.error
    app.button(key="attr_batch_keep_save").click().run()
    assert not app.exception and not app.error
    (summary,) = run_store().list()
    record = run_store().load(summary.run_id)
    assert record.kind == "attribution_batch"
    assert [row.prompt for row in record.spec.rows] == ["I love dogs because", "The store is"]
    assert replay(tiny_llama, record).matches


@pytest.fixture()
def run_store(tmp_path, monkeypatch):
    """The app's run store, kept in this test's own folder and emptied before and after it."""
    from ui.records import run_store as app_run_store

    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    app_run_store.clear()
    yield app_run_store
    app_run_store.clear()


@pytest.fixture()
def tiny(tiny_llama_dir) -> dict[str, str]:
    """Sidebar state that picks the tiny test checkpoint, like a user typing its folder."""
    return {"model_choice": OTHER_CHOICE, "model_custom_spec": str(tiny_llama_dir)}


PLANTED = {
    "model_choice": OTHER_CHOICE,
    "model_custom_spec": str(ROOT / "interp/toy/induction_model"),
}


def test_circuits_page_finds_the_planted_induction_head():
    app = open_page("pages/circuits.py", **PLANTED)
    app.radio(key="circ_task").set_value("induction").run()
    app.button(key="circ_run").click().run()
    assert not app.exception and not app.error
    top = frame_with(app, "component")
    assert top["component"].iloc[0] == "L1.H2"
    assert "L1.H2" in app.multiselect(key="circ_ablate").value  # the top heads are preselected for ablation
    app.button(key="circ_ablate_run").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: float(m.value.split()[0]) for m in app.metric}  # "3.142 nats"
    assert metrics["These components ablated"] > metrics["Full model"] + 2  # loss rises: copying is gone


def test_circuits_page_draws_the_planted_circuit_as_edges_and_patches_one_for_real():
    app = open_page("pages/circuits.py", **PLANTED)
    app.radio(key="circ_task").set_value("induction").run()
    app.button(key="circ_edge_run").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Edges scored"] == "110"  # 1 + 2 x (4 heads + MLP) nodes; 2 x (4 q + 4 k + 4 v + MLP) inputs + logits
    cpr, cmd = (float(x) for x in metrics["CPR / CMD"].split(" / "))
    assert cpr > 0.8 and cmd < 0.2
    checks = frame_with(app, "really patched (nats)")
    assert {"L1.H2 -> logits", "L0.H1 -> L1.H2.k"} <= set(checks["edge"].head(5))
    assert (checks["really patched (nats)"].head(3) > 1).all()  # each of the top edges alone breaks copying: loss rises
    chart = next(c for c in app.get("plotly_chart") if "The circuit" in c.proto.spec)
    assert "L0.H1" in chart.proto.spec and "L1.H2" in chart.proto.spec
    app.radio(key="circ_edge_by").set_value("score").run()
    app.number_input(key="circ_edge_threshold").set_value(1.0).run()  # nats: the edges that move the loss by 1 or more
    assert not app.exception and not app.error
    strong = {label for label, score in zip(checks["edge"], checks["estimate (nats)"], strict=True) if abs(score) >= 1}
    caption = next(c.value for c in app.caption if "lie on a path" in c.value)
    assert caption.startswith(f"{len(strong)} of the top {len(strong)} edges")  # the estimates above 1 among the top 5
    app.selectbox(key="circ_edge_pick").set_value("L0.H1 -> L1.H2.k").run()
    app.button(key="circ_edge_patch").click().run()
    assert not app.exception and not app.error
    patched = next(m for m in app.metric if m.label == "L0.H1 -> L1.H2.k, really patched")
    assert float(patched.value.split()[0]) == pytest.approx(
        float(checks.set_index("edge").loc["L0.H1 -> L1.H2.k"].iloc[1]), abs=1e-3
    )


def test_circuits_page_ablates_a_layers_attention_output():
    app = open_page("pages/circuits.py", **PLANTED)
    app.radio(key="circ_task").set_value("induction").run()
    picker = app.multiselect(key="circ_ablate")
    assert "L1 attention output" in picker.options and "L0 MLP output" in picker.options
    picker.set_value(["L1.attn_out"]).run()
    app.button(key="circ_ablate_run").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: float(m.value.split()[0]) for m in app.metric}  # "3.142 nats"
    assert metrics["These components ablated"] > metrics["Full model"] + 2  # the induction head's layer
    assert "Only the chosen heads kept" not in metrics  # no heads chosen: no head-faithfulness figure


def test_circuits_page_explains_a_custom_pair_that_does_not_line_up():
    app = open_page("pages/circuits.py", **PLANTED)
    app.radio(key="circ_task").set_value("custom").run()
    app.text_input(key="circ_clean").input("t1 t2 t3 t4").run()
    app.text_input(key="circ_corrupted").input("t1 t2 t3").run()
    app.text_input(key="circ_answer").input("t5").run()
    app.text_input(key="circ_wrong").input("t6").run()
    assert not app.exception
    assert any("4 tokens and the corrupted one 3" in w.value for w in app.warning)
    app.checkbox(key="circ_align").check().run()
    assert not app.exception and not app.error


def test_circuits_page_measures_with_the_chosen_metric_and_mean_ablates_a_single_pair():
    app = open_page("pages/circuits.py", **PLANTED)
    app.radio(key="circ_task").set_value("custom").run()
    app.text_input(key="circ_clean").input("t1 t2 t3 t4 t1 t2 t3").run()
    app.text_input(key="circ_corrupted").input("t1 t5 t3 t4 t1 t5 t3").run()
    app.text_input(key="circ_answer").input("t4").run()
    app.text_input(key="circ_wrong").input("t6").run()
    assert app.radio(key="circ_metric").options == [
        "Logit difference, right − wrong answer (logits)",
        "Log-probability of the right answer (nats)",
    ]
    app.radio(key="circ_metric").set_value("log_prob").run()
    app.button(key="circ_run").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Clean metric"].endswith(" nats") and float(metrics["Clean metric"].split()[0]) <= 0  # a log-probability
    app.multiselect(key="circ_ablate").set_value(["L0.H1", "L1.H2"]).run()
    app.radio(key="circ_ablation_method").set_value("mean").run()
    app.button(key="circ_ablate_run").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["These components ablated"] != metrics["Full model"]  # the mean of a real batch, not the prompt's own value
    app.radio(key="circ_task").set_value("induction").run()  # its only metric is the loss: the choice follows the task
    assert not app.exception and app.radio(key="circ_metric").value == "repeated_loss"


def test_steering_page_builds_a_vector_and_steers_with_the_slider():
    app = open_page("pages/steering.py")
    assert not app.error, [e.value for e in app.error]
    texts = [t.value for t in app.text]
    assert len(texts) == 4  # two unsteered and two steered samples
    app.slider(key="steer_coefficient").set_value(-3.0).run()
    assert not app.exception and not app.error
    steered = [t.value for t in app.text][1::2]
    assert steered != texts[1::2]  # moving the slider regenerated the steered samples
    labels = [m.label for m in app.metric]
    assert any("Perplexity" in label for label in labels)


def test_a_steering_sweep_is_kept_with_its_own_settings_and_replays(tiny, tiny_llama, run_store):
    from interp.records import replay

    app = open_page("pages/steering.py", **tiny)
    app.number_input(key="steer_samples").set_value(1).run()
    app.text_input(key="steer_sweep_coefficients").input("2").run()
    app.button(key="steer_sweep").click().run()
    assert not app.exception and not app.error
    app.number_input(key="steer_samples").set_value(3).run()  # changed after the sweep: the record keeps the sweep's 1
    app.button(key="steer_sweep_keep_save").click().run()
    assert not app.exception and not app.error
    (summary,) = run_store().list()
    record = run_store().load(summary.run_id)
    assert record.kind == "steering_sweep" and record.settings["n_samples"] == 1 and record.settings["coefficients"] == [2.0]
    assert replay(tiny_llama, record).matches  # the same checkpoint, loaded outside the app


def test_a_steering_batch_evaluation_stays_on_screen_and_is_kept_with_its_prompts(tiny, tiny_llama, run_store):
    from interp.records import replay

    app = open_page("pages/steering.py", **tiny)
    app.file_uploader(key="steer_batch_file").upload("prompts.txt", b"I love\nThe store\n", "text/plain").run()
    app.button(key="steer_batch_run").click().run()
    assert not app.exception and not app.error
    assert frame_with(app, "behaviour_steered")["prompt"].tolist() == ["I love", "The store"]
    app.text_input(key="steer_projection_prompt").input("Rain again.").run()  # an unrelated rerun keeps the table
    assert frame_with(app, "behaviour_steered").shape[0] == 2
    app.button(key="steer_batch_keep_save").click().run()
    assert not app.exception and not app.error
    (summary,) = run_store().list()
    record = run_store().load(summary.run_id)
    assert record.kind == "steering_batch_evaluation" and record.spec.prompts == ("I love", "The store")
    assert replay(tiny_llama, record).matches  # without the file


def test_steering_page_refuses_a_vector_for_another_model():
    import torch

    from steering.vector import SteeringVector

    wrong = SteeringVector(layers=(3,), directions=torch.ones(1, 32), d_model=32, model_name="other")
    app = open_page("pages/steering.py")
    app.radio(key="steer_source").set_value("file").run()
    app.file_uploader(key="steer_vector_file").upload("v.safetensors", wrong.to_safetensors()).run()
    assert not app.exception
    assert any("32 wide" in e.value for e in app.error)


def test_rlhf_page_trains_a_reward_model_scores_text_and_samples_best_of_n(tiny):
    app = open_page("pages/rlhf.py", **tiny)
    app.button(key="rlhf_train").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Held-out pairwise accuracy"].endswith("%") and "Reward" in metrics
    assert app.get("html"), "no token reward heatmap"
    app.select_slider(key="rlhf_n").set_value(2).run()
    app.button(key="rlhf_bon").click().run()
    assert not app.exception and not app.error
    replies = frame_with(app, "reply")
    assert len(replies) == 4 * 2 and replies["reward"].notna().all()
    app.button(key="rlhf_compare").click().run()
    assert not app.exception and not app.error
    methods = list(frame_with(app, "method")["method"])
    assert methods[:2] == ["unsteered", "best-of-4"] and methods[2].startswith("steering vector (layer ")
    assert any("best reward gain among 6 layer × coefficient cells" in c.value for c in app.caption)


def test_rlhf_page_runs_dpo_shows_before_and_after_and_keeps_the_run(tiny, tiny_llama, run_store):
    from interp.records import replay

    app = open_page("pages/rlhf.py", **tiny)
    app.slider(key="rlhf_steps").set_value(5).run()
    app.button(key="rlhf_dpo").click().run()
    assert not app.exception and not app.error
    assert any(c.value.startswith("5 steps in ") and "LoRA adapter saved" in c.value for c in app.caption)
    assert len(frame_with(app, "after DPO")) == 4  # before/after replies to the four evaluation prompts
    app.button(key="rlhf_dpo_keep_save").click().run()
    assert not app.exception and not app.error
    (summary,) = run_store().list()
    record = run_store().load(summary.run_id)
    assert record.kind == "dpo" and record.settings["max_steps"] == 5
    assert replay(tiny_llama, record).matches


def test_rlhf_page_loads_a_downloaded_reward_model(tiny, tiny_llama):
    from steering.rlhf import builtin_preferences, split_by_prompt, train_reward_model

    train, test = split_by_prompt(builtin_preferences())
    reward = train_reward_model(tiny_llama, train[:30], test[:10], layers=[1], steps=30).reward_model
    app = open_page("pages/rlhf.py", **tiny)
    app.file_uploader(key="rlhf_load").upload("reward_model.zip", reward.to_zip_bytes()).run()
    assert not app.exception and not app.error
    assert any("Loaded reward model: layer 1" in c.value for c in app.caption)
    assert "Reward" in {m.label for m in app.metric}  # it scores the reply at once
    app.file_uploader(key="rlhf_load").upload("notes.zip", b"not a zip").run()
    assert not app.exception
    assert any("not a zip" in e.value for e in app.error)


def test_experiments_page_exports_several_runs_as_one_report(tiny_llama, run_store):
    from interp.forward import NextTokenRun, next_token_predictions
    from interp.records import new_record

    store = run_store()
    ids = [
        store.save(new_record(tiny_llama, NextTokenRun(p), next_token_predictions(tiny_llama, p)))
        for p in ("I love", "The store", "When Mary")
    ]
    app = open_page("pages/experiments.py")
    app.multiselect(key="exp_pick").set_value(ids).run()
    assert not app.exception and not app.error
    assert any("Comparing takes exactly two runs" in c.value for c in app.caption)
    labels = [element.proto.label for element in app.get("download_button")]
    assert "Export a report of 3 runs (Markdown, LaTeX, PNG figures, JSON; zip)" in labels


def test_a_run_kept_on_the_attention_page_is_on_the_experiments_page_and_replays(run_store):

    app = open_page("pages/attention.py")
    app.text_input(key="attn_keep_note").input("induction check").run()
    app.button(key="attn_keep_save").click().run()
    assert not app.exception and not app.error
    assert any("Saved as run" in s.value for s in app.success)
    app.switch_page("pages/experiments.py").run()
    assert not app.exception and not app.error
    runs = frame_with(app, "note")
    assert list(runs["note"]) == ["induction check"] and list(runs["kind"]) == ["attention"]
    app.multiselect(key="exp_pick").set_value([run_store().list()[0].run_id]).run()
    replay_button = next(b for b in app.button if (b.key or "").startswith("exp_replay"))
    replay_button.click().run()
    assert not app.exception and not app.error
    assert any("Same results (bitwise)" in s.value for s in app.success)


def test_compression_page_compares_variants_of_the_planted_model_and_shows_its_heads_dying():
    app = open_page("pages/compression.py", **PLANTED)
    app.multiselect(key="comp_variants").set_value(["bf16 weights", "int8 weights"]).run()
    app.slider(key="comp_prune").set_value(95).run()
    app.button(key="comp_run").click().run()
    assert not app.exception and not app.error
    table = frame_with(app, "KL to original (nats/token)").set_index("variant")
    assert list(table.index) == ["bf16 weights", "int8 weights", "95% of projection weights pruned (per matrix, L1)"]
    assert table.loc["bf16 weights", "weights vs original"] == pytest.approx(0.5, abs=0.01)  # measured, not assumed
    assert table.loc["bf16 weights", "induction heads kept"] == "1 of 1"  # the planted induction head L1.H2
    pruned = table.loc["95% of projection weights pruned (per matrix, L1)"]
    assert pruned["KL to original (nats/token)"] > 10 * table.loc["int8 weights", "KL to original (nats/token)"]
    titles = [chart.proto.spec for chart in app.get("plotly_chart")]
    assert any("Quality against size" in spec for spec in titles) and any("What changed inside" in spec for spec in titles)


def test_every_page_can_run_on_a_compressed_copy_chosen_in_the_sidebar():
    app = open_app_with(**PLANTED, model_variant="int8 weights")
    assert not app.exception and not app.error
    for path in ("pages/attention.py", "pages/circuits.py", "pages/compression.py"):
        app.switch_page(path).run()
        assert not app.exception and not app.error, path
    assert any("compares variants of the model as loaded" in info.value for info in app.info)
    app.switch_page("pages/circuits.py").run()
    app.radio(key="circ_task").set_value("induction").run()
    app.button(key="circ_run").click().run()  # activation patching runs on the int8 copy
    assert not app.exception and not app.error
    assert frame_with(app, "component")["component"].iloc[0] == "L1.H2"  # the planted head survives int8 weights
    app.button(key="circ_edge_run").click().run()  # edge circuits read W_Q: a clear message, not a crash
    assert not app.exception
    assert any("quantised" in warning.value for warning in [*app.warning, *app.error])


def test_compression_page_steers_the_original_and_a_copy_with_the_same_vector(tiny_llama_dir):
    app = open_page("pages/compression.py", model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir))
    app.selectbox(key="comp_transfer_variant").set_value("int8 weights").run()
    app.number_input(key="comp_transfer_layer").set_value(1).run()
    app.button(key="comp_transfer_run").click().run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    cosine = float(metrics["Cosine to the vector re-made on the copy"])
    assert 0.9 < cosine <= 1.0  # int8 weights barely move the direction
    assert "On the original: sentiment gain (VADER, -1..1)" in metrics and "On the copy: sentiment gain (VADER, -1..1)" in metrics
