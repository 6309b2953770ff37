"""Every kind of run keeps and replays: the list comes from the registry, so a new kind without an example fails."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import tests.runs
from interp.records import new_record, numbers_of, replay
from interp.runs import RunSpec, run_kinds
from interp.serialise import dumps, loads


def every_example(model) -> dict[str, RunSpec]:
    """One example per kind, gathered from the ``tests/runs/examples_*.py`` modules (one per capability)."""
    found: dict[str, RunSpec] = {}
    for module in pkgutil.iter_modules(tests.runs.__path__):
        if module.name.startswith("examples_"):
            for spec in importlib.import_module(f"tests.runs.{module.name}").examples(model):
                assert spec.kind not in found, f"two examples of {spec.kind}"
                found[spec.kind] = spec
    return found


def test_every_registered_kind_has_an_example(tiny_llama):
    examples = every_example(tiny_llama)
    missing = sorted(set(run_kinds()) - set(examples))
    assert not missing, f"kinds without an example in tests/runs/examples_*.py: {missing}"
    assert len(run_kinds()) >= 12  # the kinds the app had before typed runs, and the newly keepable ones


@pytest.mark.parametrize("kind", sorted(run_kinds()))
def test_each_kind_keeps_and_replays(tiny_llama, run_store, kind):
    spec = every_example(tiny_llama)[kind]
    text, blob = dumps(spec)
    assert loads(text, blob).digest() == spec.digest()  # the spec itself round-trips
    result = spec.run(tiny_llama)
    run_id = run_store.save(new_record(tiny_llama, spec, result, note=f"round trip {kind}"))
    kept = run_store.load(run_id)
    assert type(kept.spec) is type(spec) and kept.spec.digest() == spec.digest()
    assert np.array_equal(numbers_of(kept.result), numbers_of(result), equal_nan=True)
    assert kept.settings == spec.settings()
    outcome = replay(tiny_llama, kept)
    assert outcome.matches, (kind, outcome.max_abs_difference)
    assert outcome.compared > 0 or not numbers_of(result).size
