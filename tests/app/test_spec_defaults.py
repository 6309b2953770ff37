"""Pages start where the specs do: a page opened with untouched widgets builds specs whose defaults are the spec's own.

A page that supplied a default of its own (a widget starting at a literal that differs from the spec, or a
spec field filled with a page constant) fails here. The settings a page fixes on purpose are listed with why.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.app.test_pages import open_page
from ui.model import OTHER_CHOICE
from ui.records import KEY_ON_SCREEN

PAGES = ["pages/home.py", "pages/attention.py", "pages/attribution.py", "pages/circuits.py", "pages/steering.py",
         "pages/rlhf.py"]  # fmt: skip
# (kind, setting): why the page sets it itself.
PAGE_CHOICES = {
    ("attention", "max_tokens"): "a display limit: a pattern view of more tokens is too dense to read",
    ("logit_lens", "max_tokens"): "the same display limit",
    ("steering_evaluation", "prompts"): "the Tune section samples the one prompt typed above its samples",
}


@pytest.mark.parametrize("page", PAGES)
def test_a_page_with_untouched_widgets_builds_specs_at_their_defaults(page, tiny_llama_dir):
    app = open_page(page, model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir))
    assert not app.exception
    specs = app.session_state[KEY_ON_SCREEN] if KEY_ON_SCREEN in app.session_state else {}  # noqa: SIM401 (AppTest state has no get)
    for kind, spec in specs.items():
        for field in dataclasses.fields(spec):
            if (kind, field.name) in PAGE_CHOICES:
                continue
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                continue  # required: the page must supply it (a prompt, a vector)
            value = getattr(spec, field.name)
            assert value == default, f"{page}: {kind}.{field.name} is {value!r}, the spec's default is {default!r}"


def test_the_pages_put_their_specs_on_screen(tiny_llama_dir):
    # The check above is only as good as what it sees: the analysis pages show at least these kinds at once.
    app = open_page("pages/attention.py", model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir))
    assert {"attention", "head_scores", "logit_lens"} <= set(app.session_state[KEY_ON_SCREEN])
