"""Uploaded prompt files: every format, and a message that says where for every bad input."""

from __future__ import annotations

import json

import pytest

from interp import InputError
from interp.prompt_files import read_prompt_file


def test_csv_with_optional_columns_and_quoted_commas():
    data = b'prompt,target,continuation\n"Hello, world",\x20there,\nThe sky is,, blue today\n'
    file = read_prompt_file("p.csv", data)
    assert [(r.line, r.prompt, r.target, r.continuation) for r in file.rows] == [
        (2, "Hello, world", " there", None),
        (3, "The sky is", None, " blue today"),
    ]
    assert file.skipped == ()


def test_tsv_txt_and_jsonl_read_the_same_prompts():
    tsv = read_prompt_file("p.tsv", b"prompt\ttarget\nOne two\t three\n")
    txt = read_prompt_file("p.txt", b"One two\n\nThree four\n")
    jsonl = read_prompt_file("p.jsonl", (json.dumps({"prompt": "One two", "target": " three"}) + "\n").encode())
    assert tsv.rows[0].prompt == jsonl.rows[0].prompt == txt.rows[0].prompt == "One two"
    assert tsv.rows[0].target == jsonl.rows[0].target == " three"
    assert [r.prompt for r in txt.rows] == ["One two", "Three four"]
    assert [(s.line, s.reason) for s in txt.skipped] == [(2, "blank line")]


def test_utf8_bom_is_accepted():
    assert read_prompt_file("p.csv", "\ufeffprompt\ncafé\n".encode()).rows[0].prompt == "café"


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("p.csv", "prompt\ncafé\n".encode("latin-1"), r"p.csv, line 2: the file is not UTF-8 .*Save it as UTF-8"),
        ("p.csv", b"text,label\nhi,1\n", r"p.csv, line 1: no 'prompt' column \(found 'text', 'label'\)"),
        ("p.tsv", b"prompt,target\nhi,x\n", r"no 'prompt' column .*separated by tabs"),
        ("p.jsonl", b'{"prompt": "a"}\n[1, 2]\n', r"p.jsonl, line 2: each line must be a JSON object"),
        ("p.jsonl", b'{"text": "a"}\n', r"p.jsonl, line 1: no 'prompt' field \(found 'text'\)"),
        ("p.jsonl", b'{"prompt": "a"\n', r"p.jsonl, line 1, column \d+: not valid JSON"),
        ("p.csv", b'prompt\n"unclosed\n', r"p.csv, line 2: .*Check the quotes"),
        ("p.xlsx", b"PK\x03\x04", r"unknown file type '.xlsx'"),
        ("p.pkl", b"\x80\x04", r"unknown file type '.pkl'"),
        ("p.txt", b"   \n\n", r"p.txt is empty"),
        ("p.csv", b"prompt\n,\n\n", r"p.csv has no usable prompt"),
    ],
)
def test_bad_files_say_what_to_fix_and_where(name, data, message):
    with pytest.raises(InputError, match=message):
        read_prompt_file(name, data)


def test_row_problems_are_listed_not_dropped():
    data = b"prompt,target,continuation,extra\nok one more,,,\n,,,\nboth,x,y,\nok two,,,\na,b,c,d,e\n"
    file = read_prompt_file("p.csv", data, count_tokens=lambda p: len(p.split()), max_prompt_tokens=2)
    assert [r.line for r in file.rows] == [5]
    assert {s.line: s.reason for s in file.skipped} == {
        2: "prompt is 3 tokens; the limit is 2",
        3: "blank row",
        4: "both 'target' and 'continuation' are set; give one",
        6: "5 cells but the header names 4 columns (unquoted separator?)",
    }
    assert file.ignored_columns == ("extra",)


def test_too_many_rows_is_refused_with_the_limit():
    data = ("prompt\n" + "x\n" * 12).encode()
    with pytest.raises(InputError, match="has 12 usable prompts; the limit is 10"):
        read_prompt_file("p.csv", data, max_rows=10)
