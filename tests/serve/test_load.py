"""A bounded load test on 127.0.0.1: 50 concurrent streaming clients with mixed steering, nothing lost.

Speed is measured in ``bench/serve.py`` (docs/PERFORMANCE.md); here only what every client gets back.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from interp.threads import on_own_thread
from tests.serve.test_api import reference

CLIENTS = 50
TOKENS = 16
MIXES = [
    [],
    [{"vector": "joy", "coefficient": 4.0}],
    [{"vector": "calm", "coefficient": -3.0, "positions": "generated"}],
    [{"vector": "joy", "coefficient": 2.0, "layers": [1]}, {"vector": "calm", "coefficient": 2.0}],
    [{"vector": "joy", "coefficient": -4.0, "positions": "prompt"}],
]
PROMPT = "The weather today"


async def one_client(http: httpx.AsyncClient, model_name: str, i: int) -> tuple[int, str, int, bool, list[str]]:
    steering = MIXES[i % len(MIXES)]
    chat = i % 2 == 1
    body = {
        "model": model_name, "max_tokens": TOKENS, "stream": True, "stream_options": {"include_usage": True},
        "ignore_eos": True, "temperature": 0.8, "seed": i % len(MIXES), "steering": steering,
    }  # fmt: skip
    if chat:
        body["messages"] = [{"role": "user", "content": PROMPT}]
    else:
        body["prompt"] = PROMPT
    path = "/v1/chat/completions" if chat else "/v1/completions"
    text, usage, done, errors = "", -1, False, []
    async with http.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            return i, "", -1, False, [f"status {response.status_code}: {(await response.aread())[:200]!r}"]
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                errors.append(chunk["error"]["message"])
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                text += (choice["delta"].get("content") or "") if chat else choice["text"]
    return i, text, usage, done, errors


def test_fifty_concurrent_streaming_clients_with_mixed_steering(base_url, tiny_llama, vector_library):
    async def run_all():
        limits = httpx.Limits(max_connections=CLIENTS + 5, max_keepalive_connections=CLIENTS + 5)
        async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(120), limits=limits) as http:
            return await asyncio.wait_for(
                asyncio.gather(*(one_client(http, tiny_llama.info.name, i) for i in range(CLIENTS))), 300
            )

    results = on_own_thread(lambda: asyncio.run(run_all()))  # a thread of its own: the browser tests' loop runs here
    assert [r[4] for r in results] == [[]] * CLIENTS  # 0 errors
    assert all(done for _, _, _, done, _ in results)  # every stream ended with [DONE]
    assert [usage for _, _, usage, _, _ in results] == [TOKENS] * CLIENTS  # nothing dropped
    # Each client got exactly its solo text, whatever else shared the batch (one Python reference per kind of client)
    wants = {}
    for i, text, *_ in results:
        key = (i % len(MIXES), i % 2)
        if key not in wants:
            wants[key] = reference(
                tiny_llama, vector_library, PROMPT, steering=MIXES[key[0]], chat=bool(key[1]), max_new_tokens=TOKENS,
                temperature=0.8, seed=key[0], stop_at_eos=False,
            )  # fmt: skip
        assert text == wants[key], i
