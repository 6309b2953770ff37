"""A compression study as one run: each variant measured against the original, kept and replayable like any run."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from interp.compression.measure import Footprint, Inside, Quality, footprint, held_out_tokens, inside, quality
from interp.compression.variants import Variant, make_variant
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.runs.spec import Progress, RunSpec, default_of

DEFAULT_VARIANTS = (Variant("bf16"), Variant("int8_weight"), Variant("int8_dynamic"), Variant("int4_weight"),
                    Variant("prune_unstructured", 0.3), Variant("prune_unstructured", 0.5, "global"))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class VariantStudy:
    variant: Variant
    quality: Quality
    footprint: Footprint
    inside: Inside


@dataclasses.dataclass(frozen=True)
class CompressionStudy:
    """The original's footprint and, per variant, what it costs and what it changes inside."""

    original: Footprint
    rows: tuple[VariantStudy, ...]

    def to_frame(self):
        import pandas as pd

        base = self.original
        return pd.DataFrame([{
            "variant": row.variant.describe(),
            "weights (MiB)": row.footprint.weight_bytes / 2**20,
            "weights vs original": row.footprint.weight_bytes / base.weight_bytes,
            "forward (ms)": row.footprint.forward_ms,
            "decode (tokens/s)": row.footprint.decode_tokens_per_second,
            "perplexity": row.quality.perplexity,
            "perplexity vs original": row.quality.perplexity / row.quality.original_perplexity,
            "KL to original (nats/token)": row.quality.kl_to_original,
            "same next token (%)": 100 * row.quality.top1_agreement,
            "induction heads kept": f"{len(row.inside.surviving('induction'))} of {len(row.inside.induction_heads)}",
            "IOI correlation": row.inside.ioi_correlation,
        } for row in self.rows])  # fmt: skip


@dataclasses.dataclass(frozen=True)
class CompressionStudyRun(RunSpec):
    """Build each variant, then measure its quality, size, speed and insides against the original."""

    kind: ClassVar[str] = "compression_study"
    title: ClassVar[str] = "Compression study"
    tolerance: ClassVar[float] = 1e-4
    mirrors = (held_out_tokens, inside)

    variants: tuple[Variant, ...] = DEFAULT_VARIANTS
    windows: int = default_of(held_out_tokens, "windows")
    length: int = default_of(held_out_tokens, "length")
    ioi: bool = default_of(inside, "ioi")

    def __post_init__(self) -> None:
        if not self.variants:
            raise InputError("Choose at least one variant to study.")
        if not (1 <= self.windows <= 16 and 16 <= self.length <= 1024):
            raise InputError("Use 1-16 windows of 16-1024 held-out tokens.")

    def run(self, model: LoadedModel, progress: Progress | None = None) -> CompressionStudy:
        say = progress or (lambda fraction, message: None)
        tokens = held_out_tokens(model, windows=self.windows, length=self.length)
        say(0.0, "Timing the original")
        original = footprint(model, tokens)
        rows = []
        for index, variant in enumerate(self.variants):
            say(index / len(self.variants), f"{variant.describe()}: building and measuring")
            shrunk = make_variant(model, variant)
            rows.append(VariantStudy(variant, quality(model, shrunk, tokens), footprint(shrunk, tokens),
                                     inside(model, shrunk, ioi=self.ioi)))  # fmt: skip
        return CompressionStudy(original, tuple(rows))
