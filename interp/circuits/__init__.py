"""Which components cause a behaviour? Ablation, activation patching, attribution patching, DLA.

Every method compares a metric (:mod:`~interp.circuits.metric`) — a number computed from the logits,
such as the logit difference between the right and the wrong answer — across runs in which some
internal activation is changed, on a task (:mod:`~interp.circuits.tasks`): a clean and a corrupted
batch of prompts that differ in what the model should answer.

* :mod:`~interp.circuits.patching` — activation patching (exact, one site at a time, batched) and
  attribution patching (a first-order estimate of every patch from one backward pass).
* :mod:`~interp.circuits.ablation` — a set of components replaced by zero, a reference mean or a
  corrupted value; keeping only a candidate circuit tests whether it suffices (faithfulness).
* :mod:`~interp.circuits.logit_attribution` — the final residual stream split into what each head and
  MLP wrote directly, read through the frozen final norm and the unembedding.
* :mod:`~interp.circuits.edges` — circuits at the level of edges (which output is read by which later input):
  EAP and EAP-IG scores, real edge patching, top-n circuits and their faithfulness curves.

Components are named one way everywhere (``L1.H2``, ``L1.attn_out``, ``L1.resid_pre@5``): see
:mod:`interp.components`. All runs go through :func:`interp.hooks.intervene`; no hook survives a call.
Each kind of run is a spec: :class:`PatchingRun`, :class:`AblationRun`, :class:`DirectLogitAttributionRun`,
:class:`EdgeCircuitRun`, :class:`EdgePatchRun`.
"""

from interp.circuits.ablation import (
    ABLATIONS,
    AblationResult,
    AblationRun,
    AblationSweep,
    CircuitAblation,
    CircuitFaithfulness,
    ablate,
    ablation_sweep,
    ablation_values,
    circuit_faithfulness,
)
from interp.circuits.edges import (
    EDGE_METHOD_TITLES,
    EDGE_METHODS,
    EdgeCircuitResult,
    EdgeCircuitRun,
    EdgePatchRun,
    EdgeScores,
    FaithfulnessCurve,
    edge_graph,
    faithfulness_curve,
    score_edges,
    top_circuit,
)
from interp.circuits.logit_attribution import DirectLogitAttribution, DirectLogitAttributionRun, direct_logit_attribution
from interp.circuits.metric import Metric
from interp.circuits.patching import DIRECTIONS, PatchingPair, PatchingResult, PatchingRun, attribution_patch, patch_sweep
from interp.circuits.tasks import CircuitTask, PatchingTask
from interp.components import SITE_KINDS, SITE_TITLES, Component, ablatable_components, all_heads, head_label

__all__ = [
    "ABLATIONS",
    "DIRECTIONS",
    "EDGE_METHODS",
    "EDGE_METHOD_TITLES",
    "SITE_KINDS",
    "SITE_TITLES",
    "AblationResult",
    "AblationRun",
    "AblationSweep",
    "CircuitAblation",
    "CircuitFaithfulness",
    "CircuitTask",
    "Component",
    "DirectLogitAttribution",
    "DirectLogitAttributionRun",
    "EdgeCircuitResult",
    "EdgeCircuitRun",
    "EdgePatchRun",
    "EdgeScores",
    "FaithfulnessCurve",
    "Metric",
    "PatchingPair",
    "PatchingResult",
    "PatchingRun",
    "PatchingTask",
    "ablatable_components",
    "ablate",
    "ablation_sweep",
    "ablation_values",
    "all_heads",
    "attribution_patch",
    "circuit_faithfulness",
    "direct_logit_attribution",
    "edge_graph",
    "faithfulness_curve",
    "head_label",
    "patch_sweep",
    "score_edges",
    "top_circuit",
]
