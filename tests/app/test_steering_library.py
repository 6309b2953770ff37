"""The Steering page's "Save to library" (AppTest on the tiny model): the vector on screen lands in the library the
server reads, and a request that names it, with the steering field the page shows, is steered exactly as
``steer()`` + ``generate()`` steer it in Python."""

from __future__ import annotations

import json
import re

import httpx
import torch

from interp import generate
from serve.api import create_app
from serve.library import VectorLibrary
from serve.settings import ServerSettings
from steering.apply import steer
from steering.datasets import built_in
from steering.make import mean_difference
from tests.app.test_pages import open_page
from tests.serve.conftest import running
from ui.model import OTHER_CHOICE

PROMPT = "I love dogs because"


def test_a_vector_saved_from_the_page_steers_a_server_request_that_names_it(tiny_llama_dir, tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("STEERSCOPE_DATA", str(tmp_path))  # the library both the page and the server use by default
    app = open_page("pages/steering.py", model_choice=OTHER_CHOICE, model_custom_spec=str(tiny_llama_dir))
    assert not app.exception and not app.error, [e.value for e in app.error]
    app.text_input(key="steer_library_name").input("from_page")
    app.button(key="steer_library_save").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    message = next(s.value for s in app.success if "Saved as `from_page`" in s.value)

    # The page's vector (built-in sentiment pairs, mean difference over the mean of the tokens, every layer), unscaled
    saved = VectorLibrary().get("from_page", tiny_llama)
    layers = tuple(range(tiny_llama.info.n_layers))
    want = mean_difference(tiny_llama, built_in("sentiment"), layers, position="mean")
    assert saved.layers == layers
    torch.testing.assert_close(saved.directions, want.directions, rtol=1e-5, atol=1e-6)

    # The steering field the page tells the user to send, sent as it is
    field = re.search(r'`("steering": \[.*\])`', message)
    assert field is not None, message
    steering = json.loads("{" + field.group(1) + "}")["steering"]
    assert steering == [{"vector": "from_page", "coefficient": 3, "layers": [0]}]  # the sliders' start on this model
    item = steering[0]
    with steer(tiny_llama, saved, item["coefficient"], layers=item["layers"]):
        steered = generate(tiny_llama, PROMPT, max_new_tokens=12).text
    assert steered != generate(tiny_llama, PROMPT, max_new_tokens=12).text  # the vector changes this text

    server = create_app(tiny_llama, ServerSettings(), library=VectorLibrary())
    with running(server) as url:
        body = {"model": tiny_llama.info.name, "prompt": PROMPT, "max_tokens": 12, "temperature": 0, "steering": steering}
        answer = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["text"] == steered
