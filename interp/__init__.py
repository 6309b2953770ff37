"""Steerscope's interpretability core: load a model, run it, look inside, intervene.

A library first: nothing here imports streamlit, so every analysis the app shows can be run
from Python or the command line (``python -m interp``). Each kind of analysis is also a typed run
spec (:class:`interp.runs.RunSpec`): ``AttentionRun(prompt).run(model)`` is what the page does.
"""

import os
import sys

# OpenMP threads spin while they wait for work, and spinning threads collapse when the machine is shared: with two
# other busy processes a SmolLM2 decode step took 277 ms with libgomp spinning (OMP_WAIT_POLICY=ACTIVE) against
# 153 ms with a short spin (GOMP_SPINCOUNT=100000), which costs nothing idle (67 vs 68 ms); passive waiting cost
# 57% idle (docs/PERFORMANCE.md, "Decode under CPU contention"). libgomp reads these once, when torch loads it, so
# they are set before anything imports torch; a user's own OpenMP settings win.
if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "100000")

from interp.errors import HookError, InputError, ModelLoadError, SteerscopeError
from interp.forward import NextTokenPredictions, next_token_predictions, run_logits
from interp.generation import Generation, generate, generate_samples
from interp.hooks import HookRun, HookSite, intervene
from interp.loading import DEFAULT_MODEL_NAME, LoadedModel, ModelInfo, load_model
from interp.runs import RunSpec, run_kinds
from interp.tokens import token_labels, tokenize

__all__ = [
    "DEFAULT_MODEL_NAME",
    "Generation",
    "HookError",
    "HookRun",
    "HookSite",
    "InputError",
    "LoadedModel",
    "ModelInfo",
    "ModelLoadError",
    "NextTokenPredictions",
    "RunSpec",
    "SteerscopeError",
    "generate",
    "generate_samples",
    "intervene",
    "load_model",
    "next_token_predictions",
    "run_kinds",
    "run_logits",
    "token_labels",
    "tokenize",
]
