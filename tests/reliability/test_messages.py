"""Every message a user sees: user text in it is shown as typed, never as Markdown; any failure is a message.

Through the entry points a user has: the app (AppTest, opened through app.py on a tiny model), the
command line (a subprocess), and the readers the Python API exposes.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interp.errors import InputError
from interp.prompt_files import read_prompt_file
from steering.rlhf.preferences import read_preferences
from tests.reliability.conftest import (
    PAYLOADS,
    ROOT,
    assert_inert,
    assert_no_traceback,
    assert_shown_inert,
    markdown_bodies,
    open_page,
    visible_text,
)
from ui.model import OTHER_CHOICE
from ui.render import md_escape

DEEP_JSON = "[" * 100_000 + "]" * 100_000
HUGE_INTEGER = "9" * 5_000


# --- the escaper itself: what it returns renders as the text typed, and as nothing else -------------------------


@pytest.mark.parametrize(
    "text",
    [
        *PAYLOADS,
        "<http://evil.example/x> and http://evil.example/y and www.evil.example and me@evil.example",
        "**bold** _it_ `code` ~~gone~~ $x^2$ :red[red] :material/home: # not a heading | a | b |",
        "- not a list\n1. not ordered\n2) nor this\n  + nor this\n===\n> not a quote",
        r"a \ backslash, \[escaped\] and &amp; an entity",
        "The prompt is 301 tokens; this view shows at most 256. Shorten it.",
    ],
)
def test_escaped_text_reads_as_typed_and_renders_nothing(text):
    escaped = md_escape(text)
    assert_inert(escaped)
    shown = visible_text(escaped)
    assert " ".join(shown.split()) == " ".join(text.split())  # Markdown turns line breaks into spaces; nothing else changes


def test_plain_messages_are_left_readable():
    message = "prompts.csv, line 2: no 'prompt' column (found 'text', 'target'). Shorten it to 256 tokens."
    assert md_escape(message) == message


# --- user text echoed back by a page -------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_model_path_is_shown_back_as_text_in_the_sidebar_and_the_page(served, payload):
    spec = f"/no/such/{payload}"
    app = open_page(model_choice=OTHER_CHOICE, model_custom_spec=spec)
    assert app.sidebar.error and app.warning
    assert_shown_inert(app, f"Nothing at {Path(spec)}")  # as a path: "http://" reads "http:/"
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_lens_target_token_is_shown_back_as_text(served, tiny, payload):
    app = open_page("pages/attention.py", **tiny)
    app.text_input(key="attn_lens_target").input(payload).run()
    assert app.error
    assert_shown_inert(app, payload)
    assert_no_traceback(app)


@pytest.mark.parametrize("kind, field", [("token", "attr_token"), ("contrast", "attr_other")])
@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_attribution_target_token_is_shown_back_as_text(served, tiny, payload, kind, field):
    app = open_page("pages/attribution.py", **tiny)
    app.radio(key="attr_target_kind").set_value(kind).run()
    app.text_input(key=field).input(payload).run()
    app.multiselect(key="attr_methods").set_value(["feature_ablation"]).run()
    app.button(key="attr_run").click().run()
    assert app.error
    assert_shown_inert(app, payload)
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_custom_circuit_answer_is_shown_back_as_text(served, tiny, payload):
    app = open_page("pages/circuits.py", **tiny)
    app.radio(key="circ_task").set_value("custom").run()
    app.text_input(key="circ_answer").input(payload).run()
    assert app.warning or app.error
    assert_shown_inert(app, payload)
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_uploaded_prompt_file_name_is_shown_back_as_text(served, tiny, payload):
    app = open_page("pages/attribution.py", **tiny)
    app.file_uploader(key="attr_upload").upload(f"{payload}.csv", b"text\nhello\n", "text/csv").run()
    assert any("no 'prompt' column" in e.value for e in app.error)
    assert_shown_inert(app, f"{payload}.csv")
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_uploaded_preference_file_name_is_shown_back_as_text(served, tiny, payload):
    app = open_page("pages/rlhf.py", **tiny)
    app.radio(key="rlhf_data").set_value("upload").run()
    line = json.dumps({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."})
    app.file_uploader(key="rlhf_upload").upload(f"{payload}.jsonl", line.encode()).run()
    assert any("at least 10" in e.value for e in app.error)
    assert_shown_inert(app, f"{payload}.jsonl")
    assert_no_traceback(app)


STEERING_UPLOADS = {
    "a vector file": ("file", "steer_vector_file", ".safetensors", b"not a safetensors file"),
    "a pairs file": ("pairs", "steer_pairs_file", ".csv", b"text\nonly one column\n"),
}


@pytest.mark.parametrize("source, key, suffix, content", STEERING_UPLOADS.values(), ids=STEERING_UPLOADS)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_uploaded_steering_file_name_is_shown_back_as_text(served, tiny, payload, source, key, suffix, content):
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value(source).run()
    app.file_uploader(key=key).upload(f"{payload}{suffix}", content).run()
    assert app.error
    assert_shown_inert(app, f"{payload}{suffix}")
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_actadd_texts_are_shown_back_as_text(served, tiny, payload):
    app = open_page("pages/steering.py", **tiny)
    app.radio(key="steer_source").set_value("actadd").run()
    app.text_input(key="steer_actadd_pos").input(f"Love {payload}").run()
    assert_shown_inert(app, f"Love {payload}")  # the vector's caption names what it was made from
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_steering_batch_file_name_is_shown_back_as_text(served, tiny, payload):
    app = open_page("pages/steering.py", **tiny)
    app.file_uploader(key="steer_batch_file").upload(f"{payload}.csv", b"text\nhello\n").run()
    assert any("no 'prompt' column" in e.value for e in app.error), [e.value for e in app.error]
    assert_shown_inert(app, f"{payload}.csv")
    assert_no_traceback(app)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_kept_runs_note_and_prompt_are_shown_back_as_text(served, tiny, tiny_llama, run_store, payload):
    from interp.forward import NextTokenRun
    from interp.records import new_record

    spec = NextTokenRun(f"Hello {payload}", k=3)
    run_id = run_store().save(new_record(tiny_llama, spec, spec.run(tiny_llama), note=payload))
    app = open_page("pages/experiments.py", **tiny)
    app.multiselect(key="exp_pick").select(run_id).run()
    assert not app.error, [e.value for e in app.error]
    assert app.dataframe[0].value["note"].iloc[0] == payload  # in the table, as typed
    settings = app.dataframe[1].value
    assert f"Hello {payload}" in settings["value"].tolist()
    for body in markdown_bodies(app):
        assert_inert(body)
    assert_no_traceback(app)


# --- files that used to crash the readers ----------------------------------------------------------------------------

BAD_JSONL = {
    "deep nesting": (f'{{"prompt": "ok"}}\n{DEEP_JSON}\n', "line 2: the JSON is nested too deeply"),
    "deep nesting in a field": ('{"prompt": ' + DEEP_JSON + "}\n", "line 1: the JSON is nested too deeply"),
    "a huge integer": (f'{{"prompt": {HUGE_INTEGER}}}\n', "line 1: a number with 5,000 digits"),
}


@pytest.mark.parametrize("content, message", BAD_JSONL.values(), ids=BAD_JSONL)
def test_prompt_and_preference_readers_answer_bad_jsonl_with_what_to_fix(content, message):
    with pytest.raises(InputError, match=message):
        read_prompt_file("p.jsonl", content.encode())
    with pytest.raises(InputError, match=message):
        read_preferences("p.jsonl", content.encode())


def test_preference_fields_that_are_not_text_are_named():
    lines = [json.dumps({"prompt": f"p{i}", "chosen": "yes", "rejected": "no"}) for i in range(12)]
    lines[3] = json.dumps({"prompt": {"nested": 1}, "chosen": "yes", "rejected": "no"})
    with pytest.raises(InputError, match=re.escape("line 4: 'prompt' must be text (in quotes), not dict.")):
        read_preferences("pairs.jsonl", "\n".join(lines).encode())


@pytest.mark.parametrize("content, message", BAD_JSONL.values(), ids=BAD_JSONL)
def test_the_attribution_page_answers_bad_jsonl_with_a_message(served, tiny, content, message):
    app = open_page("pages/attribution.py", **tiny)
    app.file_uploader(key="attr_upload").upload("prompts.jsonl", content.encode()).run()
    assert any(message in e.value for e in app.error), [e.value for e in app.error]
    assert_no_traceback(app)


@pytest.mark.parametrize("content, message", BAD_JSONL.values(), ids=BAD_JSONL)
def test_the_rlhf_page_answers_bad_jsonl_with_a_message(served, tiny, content, message):
    app = open_page("pages/rlhf.py", **tiny)
    app.radio(key="rlhf_data").set_value("upload").run()
    app.file_uploader(key="rlhf_upload").upload("pairs.jsonl", content.encode()).run()
    assert any(message in e.value for e in app.error), [e.value for e in app.error]
    assert_no_traceback(app)


# --- unexpected failures: a short message, a Details expander, the traceback in the log ---------------------------

PAGES = [
    "pages/home.py",
    "pages/attention.py",
    "pages/attribution.py",
    "pages/circuits.py",
    "pages/steering.py",
    "pages/rlhf.py",
    "pages/experiments.py",
]
FAILURES = {
    "RuntimeError": RuntimeError("boom [link](http://evil.example/x) <img src=http://evil.example/i.png>"),
    "RecursionError": RecursionError("maximum recursion depth exceeded"),
    "KeyError": KeyError("![x](http://evil.example/i.png)"),
    "MemoryError": MemoryError(),
}


def assert_unexpected_failure_shown(app, action: str, name: str) -> None:
    """A short message saying what failed, the exception in a Details expander, no traceback anywhere."""
    messages = [e.value for e in app.error]
    assert any(m.startswith(f"{action} failed unexpectedly ({name})") for m in messages), messages
    assert "Details" in [e.label for e in app.expander]
    assert any(code.value.startswith(name) for code in app.code), [c.value for c in app.code]
    for message in messages:
        assert_inert(message)
    assert_no_traceback(app)


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("name", FAILURES)
def test_an_exception_outside_every_section_ends_in_the_page_boundary(served, tiny, monkeypatch, caplog, page, name):
    import ui.model

    app = open_page(**tiny)

    def broken():
        raise FAILURES[name]

    monkeypatch.setattr(ui.model, "require_model", broken)  # every page asks for the model first, outside any section
    with caplog.at_level(logging.ERROR, logger="steerscope"):
        app.switch_page(page).run()
    assert_unexpected_failure_shown(app, "This page", name)
    assert any(r.name.startswith("steerscope") and r.exc_info and r.exc_info[0].__name__ == name for r in caplog.records)


def test_an_out_of_memory_error_says_what_to_try(served, tiny, monkeypatch):
    import ui.model

    app = open_page(**tiny)
    monkeypatch.setattr(ui.model, "require_model", lambda: (_ for _ in ()).throw(MemoryError()))
    app.switch_page("pages/home.py").run()
    assert any("ran out of memory" in e.value for e in app.error)


@pytest.mark.parametrize("name", ["RuntimeError", "RecursionError"])
def test_an_exception_inside_a_section_is_a_message_and_the_rest_of_the_page_draws(served, tiny, monkeypatch, caplog, name):
    from interp.forward import NextTokenRun

    def broken(self, model, progress=None):
        raise FAILURES[name]

    monkeypatch.setattr(NextTokenRun, "run", broken)
    with caplog.at_level(logging.ERROR, logger="steerscope"):
        app = open_page(**tiny, home_prompt="A prompt no other test used")
    assert_unexpected_failure_shown(app, "Predicting the next token", name)
    assert app.dataframe  # the model card beside it is still there
    logged = [r for r in caplog.records if r.name.startswith("steerscope") and r.exc_info]
    assert logged and logged[0].exc_info[0].__name__ == name


def test_a_model_that_fails_to_load_unexpectedly_is_a_message_in_the_sidebar(served, tmp_path, monkeypatch):
    import ui.model

    def broken(spec, progress=None):
        raise ValueError("bad [link](http://evil.example/x)")

    monkeypatch.setattr(ui.model, "load_model", broken)
    app = open_page(model_choice=OTHER_CHOICE, model_custom_spec=str(tmp_path / "a-folder-never-loaded"))
    assert any(e.value.startswith("Loading the model failed unexpectedly (ValueError)") for e in app.sidebar.error)
    assert any("No model is loaded. Loading it failed unexpectedly (ValueError)." in w.value for w in app.warning)
    assert_no_traceback(app)


# --- the command line -------------------------------------------------------------------------------------------------


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interp", *args], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)


@pytest.mark.parametrize(
    "content, message",
    [*BAD_JSONL.values(), (None, "No file at")],
    ids=[*BAD_JSONL, "a missing file"],
)
def test_the_cli_answers_a_bad_file_in_one_line_with_exit_status_2(tmp_path, content, message):
    path = tmp_path / "prompts.jsonl"
    if content is not None:
        path.write_text(content)
    done = run_cli("attribute", str(path), "--method", "shap", "--out", str(tmp_path / "out.csv"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_the_cli_reports_an_unexpected_error_in_one_line_and_logs_the_traceback(tmp_path, monkeypatch, capsys):
    import interp.prompt_files
    from interp.__main__ import main

    def broken(*args, **kwargs):
        raise RuntimeError("something deep\nwith a second line")

    monkeypatch.setattr(interp.prompt_files, "read_prompt_file", broken)
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path / "data"))
    (tmp_path / "p.txt").write_text("Hello\n")
    argv = ["attribute", str(tmp_path / "p.txt"), "--method", "shap", "--out", str(tmp_path / "out.csv")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: reading {tmp_path / 'p.txt'} failed unexpectedly (RuntimeError: something deep)")
    (log,) = (tmp_path / "data" / "logs").iterdir()
    assert str(log) in err and "Traceback" in log.read_text() and "something deep" in log.read_text()

    assert main(["--debug", *argv]) == 1  # --debug prints the traceback instead
    assert "Traceback" in capsys.readouterr().err
    assert main([*argv, "--debug"]) == 1  # after the command too
    assert "Traceback" in capsys.readouterr().err
