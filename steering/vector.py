"""Steering vectors as small values: directions per layer, arithmetic, files in and out.

A steering vector is one direction per layer at a named hook point (``resid_pre`` by default: the
residual stream entering block ``L``), together with what it was made for — the model's name,
width and weights hash — and how (method and source data). Adding ``coefficient × direction``
to that activation during generation pushes the model toward the concept the direction encodes
(Turner et al. 2023; Rimsky et al. 2024). Vectors add, subtract and scale like the arrays they
are, which is what sliders and "v_love - v_hate" need.

Files: the native format is safetensors (tensors ``direction.{layer}``) with JSON metadata; the
llama.cpp control-vector GGUF layout (as repeng writes it) is exported and imported so a vector
tuned here runs in llama.cpp; plain ``.npy`` arrays are imported without pickle.

Layer convention for llama.cpp: it adds ``direction.{il}`` to the *output* of block ``il`` (and
never to block 0's), which is Steerscope's ``resid_post`` of block ``il`` — the same tensor as the
``resid_pre`` of block ``il + 1``. Exports map either; imports come back as ``resid_post``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.validation import check_finite

HOOK_POINTS = ("resid_pre", "resid_post", "resid_mid")
MAX_FILE_BYTES = 50_000_000
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class SteeringVector:
    """Directions ``[len(layers), d_model]`` at ``blocks.{layer}.hook_{hook_point}``.

    Attributes:
        model_name, d_model, weights_sha256: the model it was made for (checked before use).
        method: "actadd", "mean_difference", "pca", "import", or "sum" after arithmetic.
        source: what it was made from, for the record (pairs, dataset name, file).
    """

    layers: tuple[int, ...]
    directions: torch.Tensor
    hook_point: str = "resid_pre"
    model_name: str = ""
    d_model: int = 0
    weights_sha256: str = ""
    method: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.hook_point not in HOOK_POINTS:
            raise InputError(f"Unknown hook point {self.hook_point!r}; choose from {', '.join(HOOK_POINTS)}.")
        if not isinstance(self.directions, torch.Tensor):
            raise InputError(f"The directions must be a tensor [layers, d_model], not {type(self.directions).__name__}.")
        if self.directions.ndim != 2 or self.directions.shape[0] != len(self.layers):
            raise InputError(
                f"Expected one direction per layer: {len(self.layers)} layers "
                f"but directions of shape {tuple(self.directions.shape)}."
            )
        if not all(isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0 for layer in self.layers):
            raise InputError(f"Layers must be whole numbers from 0 (got {list(self.layers)}).")
        if len(set(self.layers)) != len(self.layers):
            raise InputError("A steering vector lists a layer twice.")
        width = int(self.directions.shape[1])
        if self.d_model == 0:
            object.__setattr__(self, "d_model", width)  # the tensor says how wide it is
        elif self.d_model != width:
            raise InputError(f"The vector says it is {self.d_model} wide (d_model) but its directions are {width} wide.")
        if not torch.isfinite(self.directions).all():
            bad = sorted({self.layers[i] for i in torch.nonzero(~torch.isfinite(self.directions))[:, 0].tolist()})
            raise InputError(f"This vector contains NaN or infinite values (at layer(s) {bad}).")

    # -- access ---------------------------------------------------------------------------------

    def direction(self, layer: int) -> torch.Tensor:
        return self.directions[self.layers.index(layer)]

    def hook_name(self, layer: int) -> str:
        return f"blocks.{layer}.hook_{self.hook_point}"

    def norm(self) -> float:
        """The Euclidean norm over all layers' directions."""
        return float(self.directions.float().norm())

    def norms(self) -> dict[int, float]:
        return {layer: float(self.directions[i].float().norm()) for i, layer in enumerate(self.layers)}

    def at_layers(self, layers: list[int] | tuple[int, ...]) -> SteeringVector:
        """The same vector restricted to ``layers`` (each must be present)."""
        missing = [layer for layer in layers if layer not in self.layers]
        if missing:
            raise InputError(f"This vector has no direction at layer(s) {missing}; it covers {list(self.layers)}.")
        rows = torch.stack([self.direction(layer) for layer in layers])
        return dataclasses.replace(self, layers=tuple(layers), directions=rows)

    def normalised(self) -> SteeringVector:
        """Each layer's direction scaled to unit norm."""
        norms = self.directions.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return dataclasses.replace(self, directions=self.directions / norms)

    # -- arithmetic -----------------------------------------------------------------------------

    def _check_compatible(self, other: SteeringVector) -> None:
        if self.hook_point != other.hook_point or self.d_model != other.d_model:
            raise InputError(
                f"Cannot combine a {self.hook_point} vector of width {self.d_model} with a {other.hook_point} "
                f"vector of width {other.d_model}."
            )

    def __add__(self, other: SteeringVector) -> SteeringVector:
        self._check_compatible(other)
        layers = tuple(sorted(set(self.layers) | set(other.layers)))
        rows = []
        for layer in layers:
            row = torch.zeros(self.directions.shape[1], dtype=self.directions.dtype)
            if layer in self.layers:
                row = row + self.direction(layer)
            if layer in other.layers:
                row = row + other.direction(layer).to(row.dtype)
            rows.append(row)
        return dataclasses.replace(
            self, layers=layers, directions=torch.stack(rows), method="sum", source=f"({self.source}) + ({other.source})"
        )

    def __neg__(self) -> SteeringVector:
        return dataclasses.replace(self, directions=-self.directions)

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        return self + (-other)

    def __mul__(self, scale: float) -> SteeringVector:
        if not isinstance(scale, numbers.Real):
            return NotImplemented
        check_finite("scale of a steering vector", float(scale))
        return dataclasses.replace(self, directions=self.directions * float(scale))

    __rmul__ = __mul__

    def __truediv__(self, scale: float) -> SteeringVector:
        if not isinstance(scale, numbers.Real):
            return NotImplemented
        if scale == 0:
            raise InputError("Cannot divide a steering vector by 0.")
        return self * (1.0 / float(scale))

    def equals(self, other: SteeringVector) -> bool:
        """Same layers, hook point, model and exactly the same numbers."""
        return (
            self.layers == other.layers
            and self.hook_point == other.hook_point
            and self.d_model == other.d_model
            and self.model_name == other.model_name
            and self.weights_sha256 == other.weights_sha256
            and torch.equal(self.directions.float(), other.directions.float())
        )

    # -- checks ---------------------------------------------------------------------------------

    def check_for(self, model: LoadedModel, *, strict_weights: bool = False) -> list[str]:
        """Raise if the vector cannot be used on ``model``; return warnings for what merely differs."""
        info = model.info
        if self.d_model != info.d_model:
            raise InputError(
                f"This vector is {self.d_model} wide but {info.name} has d_model = {info.d_model}; it was made for another model."
            )
        bad = [layer for layer in self.layers if not 0 <= layer < info.n_layers]
        if bad:
            raise InputError(f"Layer(s) {bad} do not exist in {info.name}, which has layers 0..{info.n_layers - 1}.")
        if not torch.isfinite(self.directions).all():
            raise InputError("This vector contains NaN or infinite values.")
        warnings = []
        if self.weights_sha256 and self.weights_sha256 != info.weights_sha256:
            message = f"This vector was made on other weights ({self.model_name or 'unknown model'}); results may differ."
            if strict_weights:
                raise InputError(message)
            warnings.append(message)
        return warnings

    # -- files ----------------------------------------------------------------------------------

    def metadata(self) -> dict[str, str]:
        return {
            "format": "steerscope-steering-vector",
            "version": str(FORMAT_VERSION),
            "layers": json.dumps(list(self.layers)),
            "hook_point": self.hook_point,
            "model_name": self.model_name,
            "d_model": str(self.d_model),
            "weights_sha256": self.weights_sha256,
            "method": self.method,
            "source": self.source,
        }

    def to_safetensors(self, *, coefficient_applied: float | None = None) -> bytes:
        """The native file. ``coefficient_applied``: the coefficient these directions were already multiplied by
        (a "vector × coefficient" export), recorded so whoever loads it does not multiply by it again."""
        from safetensors.torch import save

        tensors = {f"direction.{layer}": self.direction(layer).float().contiguous() for layer in self.layers}
        metadata = self.metadata()
        if coefficient_applied is not None:
            check_finite("coefficient", float(coefficient_applied))
            metadata["coefficient_applied"] = repr(float(coefficient_applied))
        return save(tensors, metadata=metadata)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_safetensors())
        return path

    def to_gguf(self, *, model_hint: str = "llama") -> bytes:
        """llama.cpp control-vector GGUF: ``direction.{il}`` added to the output of block ``il``."""
        import gguf

        if self.hook_point == "resid_mid":
            raise InputError("llama.cpp control vectors act between blocks; a resid_mid vector cannot be exported.")
        offset = 1 if self.hook_point == "resid_pre" else 0  # resid_pre of block L = output of block L-1
        blocks = {layer - offset: self.direction(layer) for layer in self.layers}
        if any(block < 1 for block in blocks):
            raise InputError(
                "llama.cpp cannot steer the embeddings or block 0's output; drop layers "
                f"{[layer for layer in self.layers if layer - offset < 1]} before exporting."
            )
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "vector.gguf"
            writer = gguf.GGUFWriter(path, arch="controlvector")
            writer.add_string("controlvector.model_hint", model_hint)
            writer.add_uint32("controlvector.layer_count", len(blocks))
            for block, direction in sorted(blocks.items()):
                writer.add_tensor(f"direction.{block}", direction.float().numpy().astype(np.float32))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
            writer.close()
            return path.read_bytes()

    def to_npy(self) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, self.directions.float().numpy(), allow_pickle=False)
        return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Reading files (uploads are validated: size, format, width, finite values, sane norms)


def load_vector(name: str, data: bytes, model: LoadedModel | None = None, *, layers: list[int] | None = None) -> SteeringVector:
    """Read a vector from safetensors, llama.cpp GGUF or ``.npy`` bytes, checked against ``model``.

    Args:
        layers: For ``.npy`` files (which carry no layers): the layers of its rows.
    """
    if len(data) > MAX_FILE_BYTES:
        raise InputError(
            f"{name} is {len(data) / 1e6:.0f} MB; steering vectors are small, the limit is {MAX_FILE_BYTES / 1e6:.0f} MB."
        )
    suffix = Path(name).suffix.lower()
    readers = {".safetensors": _from_safetensors, ".gguf": _from_gguf, ".npy": _from_npy}
    if suffix not in readers:
        raise InputError(
            f"{name}: unknown vector file type '{suffix}'. Use .safetensors (Steerscope), .gguf (llama.cpp) or .npy."
        )
    try:
        vector = readers[suffix](name, data, model, layers)
        if model is not None:
            vector.check_for(model)
    except InputError as exc:  # a check of the vector itself: say which file it was about
        message = str(exc)
        raise InputError(message if message.startswith(name) else f"{name}: {message}") from None
    if model is not None:
        norms = np.array(list(vector.norms().values()))
        typical = _typical_residual_norm(model)
        if norms.max() > 1000 * typical:
            raise InputError(
                f"{name}: a direction has norm {norms.max():.3g}, over 1000x the model's typical residual norm "
                f"({typical:.3g}). Is it scaled correctly?"
            )
    return vector


def _typical_residual_norm(model: LoadedModel) -> float:
    embedding = model.hf_model.get_input_embeddings().weight
    return float(embedding.detach().float().norm(dim=-1).mean()) * math.sqrt(model.info.n_layers)


def _from_safetensors(name: str, data: bytes, model: LoadedModel | None, layers: list[int] | None) -> SteeringVector:
    from safetensors import safe_open
    from safetensors.torch import load

    try:
        tensors = load(data)
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".safetensors") as handle:
            handle.write(data)
            handle.flush()
            with safe_open(handle.name, framework="pt") as reader:
                meta = reader.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise InputError(f"{name} is not a readable safetensors file ({exc}).") from None
    if meta.get("format") != "steerscope-steering-vector":
        raise InputError(f"{name} is a safetensors file but not a Steerscope steering vector (no steering metadata).")
    try:
        listed = json.loads(meta.get("layers", ""))
        if not isinstance(listed, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in listed):
            raise ValueError(f"'layers' is {meta.get('layers')!r}, not a list of whole numbers")
        layers = tuple(listed)
    except ValueError as exc:
        raise InputError(f"{name}: its metadata does not list its layers ({exc}).") from None
    missing = [f"direction.{layer}" for layer in layers if f"direction.{layer}" not in tensors]
    if missing or not layers:
        found = ", ".join(sorted(tensors)) or "none"
        raise InputError(f"{name}: its layer list and its tensors do not match (missing {missing or 'all'}; tensors: {found}).")
    directions = _stack_rows(name, [tensors[f"direction.{layer}"].float().reshape(-1) for layer in layers], layers)
    claimed = meta.get("d_model", "")
    if claimed and claimed != str(directions.shape[1]):
        raise InputError(
            f"{name}: its metadata says d_model = {claimed!r} but its directions are {directions.shape[1]} wide; "
            "the file is damaged or was edited. Save the vector again."
        )
    return SteeringVector(
        layers=layers,
        directions=directions,
        hook_point=meta.get("hook_point", "resid_pre"),
        model_name=meta.get("model_name", ""),
        d_model=directions.shape[1],
        weights_sha256=meta.get("weights_sha256", ""),
        method=meta.get("method", ""),
        source=meta.get("source", name),
    )


def applied_coefficient(data: bytes) -> float | None:
    """The coefficient a Steerscope safetensors file says its directions already carry, or None (unscaled, or unreadable)."""
    from safetensors import safe_open

    try:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".safetensors") as handle:
            handle.write(data)
            handle.flush()
            with safe_open(handle.name, framework="pt") as reader:
                value = (reader.metadata() or {}).get("coefficient_applied")
        return None if value is None else float(value)
    except Exception:  # load_vector reports a broken file; here it only means nothing is recorded
        return None


def _stack_rows(name: str, rows: list[torch.Tensor], layers: Sequence[int]) -> torch.Tensor:
    widths = {layer: int(row.shape[0]) for layer, row in zip(layers, rows, strict=True)}
    if len(set(widths.values())) > 1:
        raise InputError(f"{name}: its directions have different widths ({widths}); every layer's must be d_model wide.")
    return torch.stack(rows)


@dataclasses.dataclass(frozen=True)
class ControlVectorFile:
    """The contents of a llama.cpp control-vector GGUF file.

    Attributes:
        rows: Block number → its float32 direction (``direction.N``: added to block N's output), blocks in order;
            a block named twice holds the sum, as llama.cpp adds repeated tensors.
        model_hint: ``controlvector.model_hint`` ("" where the file has none).
    """

    rows: dict[int, np.ndarray]
    model_hint: str


def read_control_vector(name: str, data: bytes) -> ControlVectorFile:
    """Parse a control-vector GGUF file (the one reader both the import and the llama.cpp check use).

    Raises InputError, naming ``name``, for a file gguf cannot read, another GGUF kind (a model), a tensor that is not
    ``direction.N`` of plain numbers, or a file with no directions.
    """
    import tempfile

    import gguf

    rows: dict[int, np.ndarray] = {}
    with tempfile.NamedTemporaryFile(suffix=".gguf") as handle:
        handle.write(data)
        handle.flush()
        try:
            reader = gguf.GGUFReader(handle.name)
        except Exception as exc:  # gguf raises ValueError/struct errors for bad files
            raise InputError(f"{name} is not a readable GGUF file ({exc}).") from None
        architecture = _gguf_string(reader, "general.architecture")
        if architecture != "controlvector":
            raise InputError(f"{name} is a GGUF file of a '{architecture}' model, not a llama.cpp control vector.")
        for tensor in reader.tensors:
            prefix, _, block = tensor.name.partition(".")
            if prefix != "direction" or not block.isdigit():
                raise InputError(f"{name}: tensor {tensor.name!r} should be named direction.N with N a block number.")
            try:
                row = np.array(tensor.data, dtype=np.float32).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{name}: tensor {tensor.name!r} does not hold plain numbers ({exc}).") from None
            if int(block) in rows and rows[int(block)].shape != row.shape:
                raise InputError(f"{name}: tensor {tensor.name!r} is named twice with different widths.")
            rows[int(block)] = rows[int(block)] + row if int(block) in rows else row
        hint = _gguf_string(reader, "controlvector.model_hint") or ""
    if not rows:
        raise InputError(f"{name} holds no direction.N tensors.")
    return ControlVectorFile(dict(sorted(rows.items())), hint)


def _from_gguf(name: str, data: bytes, model: LoadedModel | None, layers: list[int] | None = None) -> SteeringVector:
    parsed = read_control_vector(name, data)
    layers = tuple(parsed.rows)  # llama.cpp adds direction.il to block il's output: resid_post
    directions = _stack_rows(name, [torch.from_numpy(row) for row in parsed.rows.values()], layers)
    return SteeringVector(
        layers=layers,
        directions=directions,
        hook_point="resid_post",
        model_name=parsed.model_hint,
        d_model=directions.shape[1],
        method="import",
        source=f"llama.cpp control vector {name}",
        weights_sha256="",
    )


def _gguf_string(reader: Any, key: str) -> str | None:
    field = reader.fields.get(key)
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def _from_npy(name: str, data: bytes, model: LoadedModel | None, layers: list[int] | None) -> SteeringVector:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"{name}: not a plain numeric .npy array ({exc}). Pickled arrays are refused.") from None
    if array.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected numbers, found dtype {array.dtype}.")
    array = np.atleast_2d(array.astype(np.float32))
    if array.ndim != 2:
        raise InputError(f"{name}: expected shape (d_model,) or (layers, d_model), got {array.shape}.")
    if not layers:
        if model is not None and array.shape[0] == model.info.n_layers:
            layers = list(range(model.info.n_layers))
        else:
            rows = "one direction" if array.shape[0] == 1 else f"{array.shape[0]} directions"
            raise InputError(
                f"{name} holds {rows} but no layers (.npy files carry none): give the layer each row is added at "
                f"({'e.g. 4' if array.shape[0] == 1 else 'one per row, e.g. 3, 4, 5'}; "
                "the Steering page's 'Layers of its rows' box, or layers=[...] in Python)."
            )
    if len(layers) != array.shape[0]:
        raise InputError(f"{name} has {array.shape[0]} row(s) but {len(layers)} layer(s) were given; give one layer per row.")
    return SteeringVector(
        layers=tuple(layers),
        directions=torch.from_numpy(array),
        model_name=model.info.name if model is not None else "",
        d_model=array.shape[1],
        method="import",
        source=f"numpy file {name}",
    )
