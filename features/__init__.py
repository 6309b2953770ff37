"""Features: sparse autoencoders (SAEs) on the residual stream, trained here, loaded from disk, measured.

* :mod:`features.sae` — :class:`SparseAutoencoder`, the frozen value every SAE becomes (TopK, ReLU or JumpReLU).
* :mod:`features.train` — TopK training with EleutherAI's sparsify ``SparseCoder`` (why: docs/FEATURES.md).
* :mod:`features.activations` — residual-stream activations streamed through the hook context, the model
  stopped after the SAE's layer.
* :mod:`features.quality` — FVU, L0, dead fraction and CE loss recovered, shown with every SAE.
* :mod:`features.synthetic` — planted sparse directions: the known answer a trainer must recover.
"""

from features.activations import TokenStream, hook_activations, stream_activations, token_stream
from features.quality import SAEQuality, sae_quality, splice_hook
from features.sae import SparseAutoencoder, hook_layer
from features.train import StepStats, TopKSettings, TopKTrainer

__all__ = [
    "SAEQuality",
    "SparseAutoencoder",
    "StepStats",
    "TokenStream",
    "TopKSettings",
    "TopKTrainer",
    "hook_activations",
    "hook_layer",
    "sae_quality",
    "splice_hook",
    "stream_activations",
    "token_stream",
]
