"""The logit lens says how far it is: it decodes one layer row at a time."""

from __future__ import annotations

from interp.lens import LogitLensRun


def test_the_logit_lens_reports_each_layer_it_decodes(tiny_llama):
    calls: list[tuple[float, str]] = []
    lens = LogitLensRun("The store is open").run(tiny_llama, lambda fraction, message: calls.append((fraction, message)))
    fractions, messages = [f for f, _ in calls], [m for _, m in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    rows = len(lens.layer_labels)
    assert f"Decoding layer row {rows} of {rows}" in messages and len(calls) == rows + 2
