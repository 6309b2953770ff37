"""Compression lens: each variant's size, speed and quality relative to fp32, in one run.

    .venv/bin/python -m bench compression

Baseline in the same process: the fp32 model itself (ratios are variant / fp32). Quality is on held-out text
(the standard library's pydoc topics, 4 windows of 128 tokens); speed is one forward pass of those windows and
greedy decoding of 16 tokens, median of 3 (5 without --quick).
"""

from __future__ import annotations

from bench.timing import table
from interp import load_model
from interp.compression import Variant, make_variant
from interp.compression.measure import footprint, held_out_tokens, inside, quality

VARIANTS = [Variant("bf16"), Variant("int8_weight"), Variant("int8_dynamic"), Variant("int4_weight"),
            Variant("prune_unstructured", 0.3), Variant("prune_unstructured", 0.5, "global")]  # fmt: skip


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    tokens = held_out_tokens(model)
    repeats = 3 if quick else 5
    base = footprint(model, tokens, repeats=repeats)
    rows = [["fp32 (the original)", f"{base.weight_bytes / 2**20:.0f} MiB", f"{base.saved_bytes / 2**20:.0f} MiB",
             f"{base.forward_ms:.0f} ms", f"{base.decode_tokens_per_second:.1f} tok/s", "", "", "", ""]]  # fmt: skip
    for variant in VARIANTS:
        shrunk = make_variant(model, variant)
        size, q, changes = footprint(shrunk, tokens, repeats=repeats), quality(model, shrunk, tokens), inside(model, shrunk)
        survived = len(changes.surviving("induction")), len(changes.induction_heads)
        rows.append([
            variant.describe(),
            f"{size.weight_bytes / 2**20:.0f} MiB ({size.weight_bytes / base.weight_bytes:.2f}x)",
            f"{size.saved_bytes / 2**20:.0f} MiB ({size.saved_bytes / base.saved_bytes:.2f}x)",
            f"{size.forward_ms:.0f} ms ({base.forward_ms / size.forward_ms:.2f}x as fast)",
            f"{size.decode_tokens_per_second:.1f} tok/s ({size.decode_tokens_per_second / base.decode_tokens_per_second:.2f}x)",
            f"{q.perplexity:.1f} ({q.perplexity / q.original_perplexity:.2f}x)",
            f"{q.kl_to_original:.3f} nats, top-1 {100 * q.top1_agreement:.0f}%",
            f"{survived[0]} of {survived[1]}",
            f"{changes.ioi_correlation:.2f}; top {', '.join(changes.ioi_top_variant)}",
        ])  # fmt: skip
    header = (f"### Compression variants of SmolLM2-135M-Instruct, CPU (held-out perplexity of fp32: "
              f"{quality(model, model, tokens).perplexity:.1f})\n\n")  # fmt: skip
    return header + table(["variant", "weights in memory", "saved", "forward (4 × 128 tokens)", "greedy decode",
                           "perplexity", "KL to fp32 / same next token", "induction heads kept",
                           "IOI head patching: correlation with fp32; top heads"], rows)  # fmt: skip
