"""llama.cpp, the fastest thing a CPU user could pick to run a steered model, on the same GGUF in the same run.

llama-cpp-python has no wheel for this platform: ``make bench`` builds it once into the cache (``make llama-cpp``).
"""

from __future__ import annotations

import torch

from bench.timing import measure, table
from interp import load_model
from interp.engine import Engine, GenerationRequest
from interp.loading import default_gguf_path
from interp.tokens import tokenize
from steering import built_in, mean_difference
from steering.apply import steering_additions

PROMPT, NEW_TOKENS = "I think the weather today is", 64


def run(quick: bool = False) -> str:
    try:
        from llama_cpp import Llama
    except ImportError:
        return "### Against llama.cpp\n\nllama-cpp-python is not installed: `make llama-cpp` builds it once."
    repeats = 2 if quick else 3
    llm = Llama(model_path=str(default_gguf_path()), n_threads=torch.get_num_threads(), n_ctx=256, verbose=False)
    llm(PROMPT, max_tokens=8, temperature=0.0)  # warm

    def llama_64():
        llm.reset()
        out = llm(PROMPT, max_tokens=NEW_TOKENS, temperature=0.0)
        assert out["usage"]["completion_tokens"] == NEW_TOKENS or out["choices"][0]["finish_reason"] == "stop"

    theirs = measure(llama_64, repeats=repeats)
    model = load_model(None, device="cpu")
    vector = mean_difference(model, built_in("sentiment"), layers=[4], position="mean")
    engine = Engine(model)
    request = GenerationRequest(PROMPT, tuple(tokenize(model, PROMPT)), max_new_tokens=NEW_TOKENS, stop_at_eos=False,
                                additions=steering_additions(model, vector, 3.0, layers=[4]))  # fmt: skip
    try:
        ours = measure(lambda: engine.submit(request).result(), repeats=repeats)
    finally:
        engine.close()
    rows = [
        ["llama.cpp, same GGUF (its own quantisation), unsteered", f"{NEW_TOKENS / theirs.median:.1f} tok/s", "1.00x"],
        [
            "Steerscope engine, fp32, steered (layer 4)",
            f"{NEW_TOKENS / ours.median:.1f} tok/s",
            f"{theirs.median / ours.median:.2f}x",
        ],
    ]
    return f"### Against llama.cpp ({NEW_TOKENS} new tokens, greedy, 1 row, {torch.get_num_threads()} threads)\n\n" + table(
        ["path", "speed", "vs llama.cpp"], rows
    )
