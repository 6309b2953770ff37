"""Steerscope's interpretability core: load a model, run it, look inside, intervene.

A library first: nothing here imports streamlit, so every analysis the app shows can be run
from Python or the command line (``python -m interp``). Each kind of analysis is also a typed run
spec (:class:`interp.runs.RunSpec`): ``AttentionRun(prompt).run(model)`` is what the page does.
"""

import os
import sys

# OpenMP threads that spin while waiting collapse when the machine is shared: measured here with two other busy
# processes, a SmolLM2 decode step took 1.4-2.2 s at 2 spinning threads against 0.25 s with passive waiting
# (docs/PERFORMANCE.md, "Decode under CPU contention"). libgomp reads the policy once, when torch loads it, so
# it is set before anything imports torch; a user's own OMP_WAIT_POLICY wins.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
