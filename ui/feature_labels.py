"""Names users give features, kept on this machine: ``$STEERSCOPE_DATA/features/labels.json``.

One file for every SAE; an SAE's labels are keyed by a digest of its weights file, so the same SAE opened from
another folder keeps its names and a retrained one starts afresh. Written atomically; a damaged file is set aside,
not trusted and not fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from features.files import SAEFolder
from interp.records.record import data_folder

MAX_LABEL = 80
_lock = threading.Lock()
_digests: dict[tuple[str, float], str] = {}


def _labels_file() -> Path:
    return data_folder() / "features" / "labels.json"


def _sae_key(loaded: SAEFolder) -> str:
    weights = next(p for p in (loaded.folder / "sae.safetensors", loaded.folder / "sae_weights.safetensors") if p.is_file())
    key = (str(weights.resolve()), weights.stat().st_mtime)
    if key not in _digests:
        _digests[key] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return _digests[key]


def _read() -> dict:
    path = _labels_file()
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        path.replace(path.with_suffix(".damaged.json"))  # kept for the user, not read again
        return {}


def feature_label(loaded: SAEFolder, latent: int, automatic: str = "") -> str:
    """The user's name for ``latent``, else ``automatic`` (the dashboard's label from its top tokens)."""
    with _lock:
        return str(_read().get(_sae_key(loaded), {}).get(str(latent), automatic))


def rename_feature(loaded: SAEFolder, latent: int, label: str) -> None:
    label = " ".join(label.split())[:MAX_LABEL]  # one line, bounded
    with _lock:
        labels = _read()
        names = labels.setdefault(_sae_key(loaded), {})
        if label:
            names[str(latent)] = label
        else:
            names.pop(str(latent), None)
        path = _labels_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(labels, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
