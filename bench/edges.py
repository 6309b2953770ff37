"""Edge circuits: edges scored per second by EAP and EAP-IG, and the full IOI graph, on SmolLM2-135M.

    .venv/bin/python -m bench edges

Baseline in the same process: one plain forward + backward pass of the same batch (what a single gradient of the
metric costs without the per-edge bookkeeping), and activation patching of every head (the node-level sweep).
"""

from __future__ import annotations

import torch

from bench.timing import measure, table
from interp import load_model
from interp.circuits.edges import edge_graph, faithfulness_curve, score_edges
from interp.circuits.patching import patch_sweep
from interp.circuits.tasks import CircuitTask
from interp.hooks import intervene


def run(quick: bool = False) -> str:
    model = load_model(None, device="cpu")
    task = CircuitTask("ioi").build(model)
    clean, corrupted, metric = task.clean, task.corrupted, task.metric
    n_edges = edge_graph(model.info).n_edges
    repeats = 1 if quick else 3

    def gradient():
        with intervene(model), torch.enable_grad():
            embeddings = model.bridge.embed(clean).detach().requires_grad_(True)
            value = metric(model.bridge(clean, logits_to_keep=1))[0]
            value.backward()
        return embeddings

    plain = measure(gradient, repeats=repeats)
    rows = []
    for method, steps in (("eap", 1), ("eap-ig", 5), ("eap-ig", 10)):
        timing = measure(lambda m=method, s=steps: score_edges(model, clean, corrupted, metric, method=m, steps=s),
                         repeats=repeats)  # fmt: skip
        name = "EAP" if method == "eap" else f"EAP-IG, m = {steps}"
        rows.append([name, f"{n_edges / timing.median:,.0f} edges/s", timing.cell("s", 1, 2),
                     f"{timing.median / plain.median:.1f}x one forward + backward ({plain.cell()})"])  # fmt: skip
    scores = score_edges(model, clean, corrupted, metric, method="eap-ig", steps=5)
    curve = measure(lambda: faithfulness_curve(model, clean, corrupted, metric, scores, random_repeats=3), repeats=1)
    nodes = measure(lambda: patch_sweep(model, clean, corrupted, metric, "heads"), repeats=1)
    heads = model.info.n_layers * model.info.n_heads
    rows.append(["the full IOI graph: EAP-IG (m = 5), then the faithfulness curve (17 sizes, 3 random circuits each)", "",
                 f"{scores.seconds:.1f} s + {curve.median:.1f} s",
                 f"node-level activation patching of all {heads} heads: {nodes.cell('s', 1, 1)}"])  # fmt: skip
    header = f"### Edge circuits: IOI ({clean.shape[0]} prompts × {clean.shape[1]} tokens), {n_edges:,} edges, CPU\n\n"
    return header + table(["method", "edges scored per second", "time", "against the baseline"], rows)
