"""Defaults are defined once: a spec's defaults are the defaults of the core functions it runs."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from interp.runs import run_kinds


@pytest.mark.parametrize("kind", sorted(run_kinds()))
def test_spec_defaults_are_the_functions_defaults(kind):
    spec_class = run_kinds()[kind]
    checked = 0
    for function in spec_class.mirrors:
        parameters = inspect.signature(function).parameters
        for field in dataclasses.fields(spec_class):
            parameter = parameters.get(field.name)
            if parameter is None or parameter.default is inspect.Parameter.empty:
                continue
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                continue  # required by the spec (e.g. a batch's prompts): no default of its own to compare
            spec_default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            assert spec_default == parameter.default, (
                f"{spec_class.__name__}.{field.name} defaults to {spec_default!r} "
                f"but {function.__qualname__}() to {parameter.default!r}"
            )
            checked += 1
    has_defaults = any(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(spec_class)
    )
    # A spec with defaults must say which function they come from, and share at least one with it.
    assert not has_defaults or checked > 0, f"{spec_class.__name__} has defaults but mirrors no function that has them"
