"""Foundation: model loading, forward latency, and KV-cached greedy decoding speed."""

from __future__ import annotations

import os
import tempfile
import time

import torch

from bench.timing import Timing, measure, raw_greedy, table
from interp import generate, intervene, load_model
from interp.loading import load_hf_model
from interp.tokens import tokenize


def cold_load(repeats_gguf: int = 2, repeats_cache: int = 5) -> str:
    """GGUF (first load: dequantise + convert) vs the verified safetensors cache (later loads)."""
    saved = os.environ.get("STEERSCOPE_CACHE")
    gguf, cached = [], []
    try:
        for _ in range(repeats_gguf):
            with tempfile.TemporaryDirectory() as empty_cache:
                os.environ["STEERSCOPE_CACHE"] = empty_cache
                start = time.perf_counter()
                load_model(None, device="cpu")
                gguf.append(time.perf_counter() - start)
                for _ in range(repeats_cache if not cached else 0):
                    start = time.perf_counter()
                    load_model(None, device="cpu")
                    cached.append(time.perf_counter() - start)
    finally:
        if saved is None:
            os.environ.pop("STEERSCOPE_CACHE", None)
        else:
            os.environ["STEERSCOPE_CACHE"] = saved
    first = Timing(sorted(gguf)[len(gguf) // 2], min(gguf), max(gguf), len(gguf))
    later = Timing(sorted(cached)[len(cached) // 2], min(cached), max(cached), len(cached))
    rows = [
        ["first load (GGUF → safetensors cache)", first.cell("s", 1, 2), "1.00x"],
        ["later load (verified cache)", later.cell("s", 1, 2), f"{first.median / later.median:.1f}x faster"],
    ]
    return "### Loading SmolLM2-135M-Instruct (imports excluded)\n\n" + table(["step", "time", "vs first"], rows)


def forward_latency(model, reference, repeats: int = 15) -> str:
    rows = []
    generator = torch.Generator().manual_seed(0)
    for length in (16, 128):
        ids = torch.randint(0, model.info.d_vocab, (1, length), generator=generator)
        with torch.no_grad():
            raw = measure(lambda ids=ids: reference(ids).logits, repeats=repeats)

            def bridged(ids=ids):
                with intervene(model):
                    return model.bridge(ids)

            def hooked(ids=ids):
                with intervene(model, {"blocks.8.hook_resid_pre": lambda act, site: act + 0.0}):
                    return model.bridge(ids)

            plain = measure(bridged, repeats=repeats)
            one_hook = measure(hooked, repeats=repeats)
        rows += [
            [f"{length}", "raw Hugging Face", raw.cell(), "1.00x"],
            [f"{length}", "bridge (interp, under the lock)", plain.cell(), f"{plain.median / raw.median:.2f}x"],
            [f"{length}", "bridge + one resid_pre hook", one_hook.cell(), f"{one_hook.median / raw.median:.2f}x"],
        ]
    return "### Forward pass latency (batch 1, fp32, CPU)\n\n" + table(["tokens", "path", "time", "vs raw HF"], rows)


def decode_speed(model, reference, new_tokens: int = 64, repeats: int = 5) -> str:
    prompt = "The history of the city of Paris begins"
    ids = torch.tensor([tokenize(model, prompt)])
    direction = torch.randn(model.info.d_model) * 0.5

    hf_generate = raw_greedy(reference, ids, new_tokens)

    def ours(hooks=None):
        return generate(model, prompt, max_new_tokens=new_tokens, stop_at_eos=False, hooks=hooks)

    raw = measure(hf_generate, repeats=repeats)
    plain = measure(ours, repeats=repeats)
    steered = measure(lambda: ours({"blocks.8.hook_resid_pre": lambda act, site: act + direction}), repeats=repeats)

    def rate(t: Timing) -> str:
        return f"{new_tokens / t.median:.1f} tok/s ({new_tokens / t.high:.1f}–{new_tokens / t.low:.1f})"

    rows = [
        ["raw HF generate, KV cache", rate(raw), "1.00x"],
        ["interp.generate, KV cache", rate(plain), f"{raw.median / plain.median:.2f}x"],
        ["interp.generate + steering hook", rate(steered), f"{raw.median / steered.median:.2f}x"],
    ]
    return f"### Greedy decoding, {new_tokens} new tokens\n\n" + table(["path", "speed", "vs raw HF"], rows)


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    reference, _ = load_hf_model(model.folder)
    sections = [
        cold_load(1 if quick else 2, 3 if quick else 5),
        forward_latency(model, reference, repeats=5 if quick else 15),
        decode_speed(model, reference, repeats=2 if quick else 5),
    ]
    return "\n\n".join(sections)
