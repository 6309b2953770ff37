"""The vector library: steering vectors saved by name, shared by the app's Steering page and the server.

A vector tuned in the app is saved here ("Save to library") and a request names it the same minute:
``"steering": [{"vector": "joy", "coefficient": 4}]``. Each vector is one safetensors file ``<name>.safetensors``
in the library's folder (``data/vectors`` by default, under ``STEERSCOPE_DATA`` when set), written atomically so a
reader never sees half a file. Uploads (safetensors from Steerscope, llama.cpp GGUF control vectors) pass the same
checks as the app's uploads (:func:`steering.vector.load_vector`: size, format, width, finite values, sane norms)
and are stored as safetensors; an upload replaces a saved vector of its name only when asked to (``overwrite``).
Pickle is never read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import struct
import threading
from pathlib import Path

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.outputs import write_atomically
from interp.records.record import data_folder
from steering.vector import MAX_FILE_BYTES, SteeringVector, load_vector

SUFFIX = ".safetensors"
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_HELP = "1-64 letters, digits, '_', '-' or '.', starting with a letter or digit (e.g. joy or sentiment_L3)"


class UnknownVector(InputError):
    """A request named a vector the library does not hold (the server answers 404)."""


class VectorExists(InputError):
    """A save that must not replace found a vector of that name already there (the server answers 409)."""


@dataclasses.dataclass(frozen=True)
class VectorEntry:
    """What the library says about one saved vector, without loading its numbers."""

    name: str
    layers: tuple[int, ...]
    d_model: int
    hook_point: str
    model_name: str
    method: str
    size_bytes: int
    modified: float  # seconds since the epoch

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.name, "object": "steering_vector", "layers": list(self.layers), "d_model": self.d_model,
            "hook_point": self.hook_point, "model_name": self.model_name, "method": self.method,
            "bytes": self.size_bytes, "created": int(self.modified),
        }  # fmt: skip


def check_name(name: object) -> str:
    """``name`` if it is a safe file name for the library, else an InputError saying what a name may be."""
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name) or ".." in name:
        shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
        raise InputError(f"{shown} is not a vector name: use {NAME_HELP}.")
    if name.lower().endswith((SUFFIX, ".gguf", ".npy")):
        raise InputError(f"Name the vector without a file extension (e.g. {name.rsplit('.', 1)[0]!r}).")
    return name


def default_folder() -> Path:
    return data_folder() / "vectors"


class VectorLibrary:
    """Vectors saved by name in one folder (made on the first save). Safe to share between threads."""

    def __init__(self, folder: str | Path | None = None, *, max_upload_bytes: int = MAX_FILE_BYTES) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.max_upload_bytes = max_upload_bytes
        self._lock = threading.Lock()
        # Checked vectors by (name, model), kept while the file is unchanged: a request must not re-read and
        # re-check its vector (the norm check reads the whole embedding matrix) on every call.
        self._checked: dict[tuple[str, int], tuple[tuple[int, int], SteeringVector]] = {}

    def path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}{SUFFIX}"

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(
            p.name[: -len(SUFFIX)] for p in self.folder.glob(f"*{SUFFIX}") if NAME_RULE.fullmatch(p.name[: -len(SUFFIX)])
        )

    def list(self) -> list[VectorEntry]:
        """Every saved vector, by name (files that cannot be read are left out, not fatal)."""
        entries = []
        for name in self.names():
            try:
                entries.append(self._entry(name))
            except (OSError, ValueError, InputError):
                continue
        return entries

    def _entry(self, name: str) -> VectorEntry:
        from safetensors import safe_open

        path = self.path(name)
        stat = path.stat()
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            layers = tuple(int(k.split(".", 1)[1]) for k in handle.keys() if k.startswith("direction."))  # noqa: SIM118
        return VectorEntry(
            name=name, layers=tuple(sorted(layers)), d_model=int(meta.get("d_model") or 0), hook_point=meta.get("hook_point", ""),
            model_name=meta.get("model_name", ""), method=meta.get("method", ""), size_bytes=stat.st_size, modified=stat.st_mtime,
        )  # fmt: skip

    def unknown(self, name: str) -> UnknownVector:
        held = self.names()
        listing = ", ".join(held[:20]) + (f" and {len(held) - 20} more" if len(held) > 20 else "") if held else "none yet"
        return UnknownVector(
            f"No vector named {name!r} in the library. Saved vectors: {listing}. Save one from the Steering page or "
            "upload it (POST /v1/vectors)."
        )

    def get(self, name: str, model: LoadedModel) -> SteeringVector:
        """The vector saved as ``name``, checked for ``model`` (width, layers, finite, norms)."""
        path = self.path(name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise self.unknown(name) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        key = (name, id(model))
        with self._lock:
            cached = self._checked.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        vector = load_vector(f"{name}{SUFFIX}", path.read_bytes(), model)
        with self._lock:
            self._checked[key] = (stamp, vector)
        return vector

    def save(self, vector: SteeringVector, name: str, *, overwrite: bool = True) -> VectorEntry:
        """Save ``vector`` as ``name``, all at once. A vector already saved as ``name`` is replaced, or with
        ``overwrite=False`` kept, and :class:`VectorExists` raised."""
        path = self.path(name)
        data = vector.to_safetensors()
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if overwrite:
                write_atomically(path, data)
            else:
                _write_new(path, data, name)
            for key in [key for key in self._checked if key[0] == name]:
                del self._checked[key]
        return self._entry(name)

    def upload(
        self, name: str, data: bytes, model: LoadedModel, *, file_name: str | None = None, overwrite: bool = False
    ) -> VectorEntry:
        """Check an uploaded file (safetensors or llama.cpp GGUF) as the app checks uploads, then save it as ``name``
        (a vector already saved as ``name`` is replaced only with ``overwrite``; else :class:`VectorExists`)."""
        if not overwrite and self.path(name).exists():  # said before the file is read; the save checks again
            raise VectorExists(f"A vector named {name!r} is already in the library; upload with overwrite to replace it.")
        if not isinstance(data, bytes | bytearray):
            raise InputError("Upload the vector file's bytes.")
        if len(data) > self.max_upload_bytes:
            raise InputError(
                f"The file is {len(data) / 1e6:.1f} MB; the limit for a vector is {self.max_upload_bytes / 1e6:.0f} MB."
            )
        suffix = file_format(bytes(data), file_name)
        vector = load_vector(f"{name}{suffix}", bytes(data), model)
        return self.save(vector, name, overwrite=overwrite)


def _write_new(path: Path, data: bytes, name: str) -> None:
    """Write ``data`` to ``path`` whole, only if nothing is there: the finished file is hard-linked into place, which
    fails if the name exists, so two uploads of one name (even from two server processes) cannot both win."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    write_atomically(temporary, data)
    exists = VectorExists(f"A vector named {name!r} is already in the library; save with overwrite to replace it.")
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise exists from None
    except OSError:  # a file system without hard links: then only this process's lock keeps two saves apart
        if path.exists():
            raise exists from None
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def file_format(data: bytes, file_name: str | None = None) -> str:
    """``.safetensors`` or ``.gguf`` from the file's first bytes (its name may lie); anything else is refused."""
    if data[:4] == b"GGUF":
        return ".gguf"
    if len(data) > 9 and data[8:9] == b"{":
        (header,) = struct.unpack("<Q", data[:8])
        if 2 <= header <= len(data) - 8:
            try:
                json.loads(data[8 : 8 + header])
                return SUFFIX
            except (ValueError, UnicodeDecodeError):
                pass
    if data[:1] == b"\x80" or data[:2] == b"PK" or (file_name or "").lower().endswith((".pt", ".pth", ".pkl", ".pickle", ".bin")):
        raise InputError(
            "This looks like a pickle or torch.save file; those can run code when read, so they are never opened. "
            "Export the vector as .safetensors (Steerscope) or .gguf (llama.cpp control vector)."
        )
    if data[:6] == b"\x93NUMPY":
        raise InputError(
            "A .npy array carries no layers; upload it on the Steering page (which asks for them) or as .safetensors."
        )
    raise InputError("Not a vector file: upload .safetensors (Steerscope) or .gguf (llama.cpp control vector).")
