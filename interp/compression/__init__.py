"""Compressed variants of a loaded model — what shrinking it costs and what it breaks inside (issue 17, in progress).

* :mod:`~interp.compression.variants` — a variant is a real :class:`~interp.loading.LoadedModel` (its own bridge,
  weights changed, everything else shared), so every page and run can use it: bf16, int8 and int4 weights (torchao),
  magnitude pruning (unstructured L1, per layer or global, by :mod:`torch.nn.utils.prune`) and structured head pruning.
* :mod:`~interp.compression.measure` — quality, size and speed, and what changed inside, against the original.
* :mod:`~interp.compression.study` — all of it for several variants as one run kind (``compression_study``).
"""

from interp.compression.study import CompressionStudy, CompressionStudyRun
from interp.compression.variants import VARIANT_KINDS, Variant, make_variant, sparsity, weight_bytes

__all__ = ["VARIANT_KINDS", "CompressionStudy", "CompressionStudyRun", "Variant", "make_variant", "sparsity", "weight_bytes"]
