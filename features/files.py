"""SAE folders on disk: Steerscope's own (sparsify's layout plus a card), sparsify's and SAELens's, read safely.

Three layouts, told apart by their weights file:

* **sparsify** (EleutherAI): ``cfg.json`` (``d_in``, ``num_latents``, ``k``, ``activation``, ...) and
  ``sae.safetensors`` with ``encoder.weight`` ``[d_sae, d_in]``, ``encoder.bias``, ``W_dec`` ``[d_sae, d_in]``,
  ``b_dec``. The folder is named after the Hugging Face module it reads (``layers.6``: the output of block 6, i.e.
  ``blocks.6.hook_resid_post``; ``layers.6.mlp``: ``blocks.6.hook_mlp_out``).
* **Steerscope**: the sparsify layout (so sparsify's own ``SparseCoder.load_from_disk`` opens it too) with a
  ``card.json`` beside it: the hook point and what the SAE was trained on, how long, and how good it is.
* **SAELens** (v6, and older files it converts): ``cfg.json`` (``d_in``, ``d_sae``, ``architecture``
  standard/topk/jumprelu, ``apply_b_dec_to_input``, ``normalize_activations``, ``metadata.hook_name``; before 6.0
  ``hook_point`` and ``activation_fn_kwargs.k``) and ``sae_weights.safetensors`` with ``W_enc`` ``[d_in, d_sae]``,
  ``b_enc``, ``W_dec`` ``[d_sae, d_in]``, ``b_dec`` and, for JumpReLU, ``threshold`` (or ``log_threshold``).

Only JSON and safetensors are read: a folder holding nothing but pickles (``.pt``, ``.bin``, ``.pkl``) is refused
with a message, never unpickled. Every tensor is checked for shape against the config and the model, and for NaN.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from features.sae import SparseAutoencoder, hook_layer
from interp.errors import InputError

CONFIG = "cfg.json"
CARD = "card.json"
SPARSIFY_WEIGHTS = "sae.safetensors"
SAELENS_WEIGHTS = "sae_weights.safetensors"
_MAX_JSON_BYTES = 1_000_000
_PICKLES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
# sparsify names a folder after the Hugging Face module whose output it read
_SPARSIFY_FOLDER = {
    re.compile(r"^(?:model\.)?layers\.(\d+)$"): "blocks.{}.hook_resid_post",
    re.compile(r"^(?:model\.)?layers\.(\d+)\.mlp$"): "blocks.{}.hook_mlp_out",
    re.compile(r"^(?:model\.)?layers\.(\d+)\.self_attn$"): "blocks.{}.hook_attn_out",
}


@dataclasses.dataclass(frozen=True)
class SAEFolder:
    """An SAE read from disk: the SAE, the layout it came in, and its card (empty for a foreign folder)."""

    sae: SparseAutoencoder
    layout: str  # "steerscope", "sparsify" or "saelens"
    folder: Path
    card: Mapping[str, Any]


def save_sae(sae: SparseAutoencoder, folder: str | Path, card: Mapping[str, Any], *, dtype: torch.dtype = torch.float16) -> Path:
    """Write a TopK ``sae`` in sparsify's layout plus ``card.json`` (the hook point goes in the card)."""
    if sae.activation != "topk" or not sae.subtract_decoder_bias:
        raise InputError("Only TopK SAEs that subtract their decoder bias are written in sparsify's layout.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "activation": "topk",
        "expansion_factor": max(1, sae.d_sae // sae.d_in),
        "normalize_decoder": True,
        "num_latents": sae.d_sae,
        "k": sae.k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": sae.d_in,
    }
    tensors = {
        "encoder.weight": sae.encoder_weight,
        "encoder.bias": sae.encoder_bias,
        "W_dec": sae.decoder_weight,
        "b_dec": sae.decoder_bias,
    }
    save_file({name: t.to(dtype).contiguous() for name, t in tensors.items()}, str(folder / SPARSIFY_WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(config))
    (folder / CARD).write_text(json.dumps({**card, "hook_name": sae.hook_name}, indent=2))
    return folder


def load_sae(folder: str | Path, *, d_model: int | None = None, hook_name: str | None = None) -> SAEFolder:
    """Read the SAE in ``folder`` (any of the three layouts), checked against a model of width ``d_model``.

    ``hook_name`` says where a foreign SAE reads when its folder does not (a sparsify folder with an unusual name).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"There is no folder {folder.name!r}; give the folder that holds the SAE's cfg.json.")
    if (folder / SAELENS_WEIGHTS).is_file():
        sae, layout, card = _read_saelens(folder, hook_name), "saelens", {}
    elif (folder / SPARSIFY_WEIGHTS).is_file():
        card = _read_json(folder / CARD) if (folder / CARD).is_file() else {}
        layout = "steerscope" if card else "sparsify"
        sae = _read_sparsify(folder, hook_name or card.get("hook_name"), layout)
    else:
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in _PICKLES)
        if pickles:
            raise InputError(
                f"The folder holds {', '.join(pickles[:3])}: pickle files, which Steerscope never opens (they can run "
                "code). Save the SAE as safetensors (sae.safetensors or sae_weights.safetensors) with its cfg.json."
            )
        raise InputError(
            f"No SAE in {folder.name!r}: expected cfg.json with sae.safetensors (sparsify) or sae_weights.safetensors (SAELens)."
        )
    if d_model is not None and sae.d_in != d_model:
        raise InputError(
            f"The SAE reads {sae.d_in}-dimensional activations but the model's residual stream has {d_model}; it was "
            "trained for another model."
        )
    return SAEFolder(sae, layout, folder, card)


# -- the layouts ---------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    if path.stat().st_size > _MAX_JSON_BYTES:
        raise InputError(f"{path.name} is over 1 MB; an SAE config is a few hundred bytes.")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path.name} is not valid JSON ({error.__class__.__name__}); fix or replace it.") from None
    if not isinstance(value, dict):
        raise InputError(f"{path.name} must hold a JSON object.")
    return value


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(f"{path.name} is not a readable safetensors file ({error.__class__.__name__}).") from None


def _tensor(tensors: Mapping[str, torch.Tensor], name: str, file: str) -> torch.Tensor:
    if name not in tensors:
        raise InputError(f"{file} has no {name!r} tensor; it holds {', '.join(sorted(tensors)) or 'nothing'}.")
    return tensors[name].float()


def _integer(config: Mapping[str, Any], key: str, file: str = CONFIG) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{file} needs {key!r} as a whole number; it has {value!r}.")
    return value


def _checked_hook(hook_name: Any, where: str) -> str:
    if not isinstance(hook_name, str) or not hook_name:
        raise InputError(f"The SAE does not say which hook point it reads ({where}); give it one, e.g. blocks.6.hook_resid_post.")
    hook_layer(hook_name)
    return hook_name


def _read_sparsify(folder: Path, hook_name: str | None, layout: str) -> SparseAutoencoder:
    config = _read_json(folder / CONFIG) if (folder / CONFIG).is_file() else None
    if config is None:
        raise InputError(f"The folder has {SPARSIFY_WEIGHTS} but no {CONFIG}; sparsify writes both.")
    for flag, what in (("transcode", "a transcoder"), ("skip_connection", "a skip connection")):
        if config.get(flag):
            raise InputError(f"This sparsify SAE is {what}; Steerscope reads plain autoencoders only.")
    if config.get("activation", "topk") != "topk":
        raise InputError(f"This sparsify SAE uses the {config.get('activation')!r} activation; Steerscope reads TopK ones.")
    if hook_name is None:
        for pattern, template in _SPARSIFY_FOLDER.items():
            match = pattern.match(folder.name)
            if match:
                hook_name = template.format(match.group(1))
                break
    hook_name = _checked_hook(hook_name, f"the folder name {folder.name!r} is not layers.N")
    tensors = _tensors(folder / SPARSIFY_WEIGHTS)
    d_in = _integer(config, "d_in")
    width = _integer(config, "num_latents") if config.get("num_latents") else d_in * _integer(config, "expansion_factor")
    decoder = _tensor(tensors, "W_dec", SPARSIFY_WEIGHTS)
    if tuple(decoder.shape) != (width, d_in):
        raise InputError(f"{SPARSIFY_WEIGHTS}'s W_dec is {list(decoder.shape)} but {CONFIG} says {width} latents × {d_in}.")
    return SparseAutoencoder(
        encoder_weight=_tensor(tensors, "encoder.weight", SPARSIFY_WEIGHTS),
        encoder_bias=_tensor(tensors, "encoder.bias", SPARSIFY_WEIGHTS),
        decoder_weight=decoder,
        decoder_bias=_tensor(tensors, "b_dec", SPARSIFY_WEIGHTS),
        hook_name=hook_name,
        activation="topk",
        k=_integer(config, "k"),
        source=layout,
    )


def _saelens_config(config: dict[str, Any]) -> dict[str, Any]:
    """SAELens ≥ 6 keys from any version's cfg.json (what its ``handle_pre_6_0_config`` does, for the keys read here)."""
    config = dict(config)
    metadata = config.get("metadata") if isinstance(config.get("metadata"), dict) else {}
    config["hook_name"] = metadata.get("hook_name") or config.get("hook_name") or config.get("hook_point")
    if "architecture" not in config:
        kwargs = config.get("activation_fn_kwargs") or {}
        if config.get("activation_fn", config.get("activation_fn_str")) == "topk":
            config["architecture"], config["k"] = "topk", kwargs.get("k", config.get("k"))
        else:
            config["architecture"] = "standard"
    normalize = config.get("normalize_activations", "none")
    config["normalize_activations"] = {False: "none", True: "expected_average_only_in", None: "none"}.get(normalize, normalize)
    return config


def _read_saelens(folder: Path, hook_name: str | None) -> SparseAutoencoder:
    if not (folder / CONFIG).is_file():
        raise InputError(f"The folder has {SAELENS_WEIGHTS} but no {CONFIG}; SAELens writes both.")
    config = _saelens_config(_read_json(folder / CONFIG))
    architecture = config["architecture"]
    if architecture not in ("standard", "topk", "jumprelu"):
        raise InputError(f"This SAELens SAE's architecture is {architecture!r}; Steerscope reads standard, topk and jumprelu.")
    if config["normalize_activations"] != "none":
        raise InputError(
            f"This SAE normalises its input ({config['normalize_activations']!r}), with a scale SAELens keeps outside "
            "the folder; Steerscope reads SAEs trained on raw activations (normalize_activations: none)."
        )
    hook_name = _checked_hook(hook_name or config["hook_name"], "cfg.json has no metadata.hook_name")
    tensors = _tensors(folder / SAELENS_WEIGHTS)
    if "scaling_factor" in tensors and not torch.all(tensors["scaling_factor"] == 1):
        raise InputError("This SAE has a scaling_factor other than 1 (an old SAELens format); Steerscope cannot apply it.")
    d_in, d_sae = _integer(config, "d_in"), _integer(config, "d_sae")
    encoder = _tensor(tensors, "W_enc", SAELENS_WEIGHTS)
    decoder = _tensor(tensors, "W_dec", SAELENS_WEIGHTS)
    encoder_bias = _tensor(tensors, "b_enc", SAELENS_WEIGHTS)
    for name, tensor, shape in (("W_enc", encoder, (d_in, d_sae)), ("W_dec", decoder, (d_sae, d_in))):
        if tuple(tensor.shape) != shape:
            raise InputError(
                f"{SAELENS_WEIGHTS}'s {name} is {list(tensor.shape)}; {CONFIG} (d_in {d_in}, d_sae {d_sae}) needs {list(shape)}."
            )
    encoder = encoder.T
    threshold, k = None, 0
    if architecture == "jumprelu":
        if "threshold" in tensors:
            threshold = tensors["threshold"].float()
        elif "log_threshold" in tensors:
            threshold = tensors["log_threshold"].float().exp()
        else:
            raise InputError(f"A JumpReLU SAE needs a threshold (or log_threshold) tensor in {SAELENS_WEIGHTS}.")
    if architecture == "topk":
        k = _integer(config, "k")
        if config.get("rescale_acts_by_decoder_norm"):
            # SAELens scales pre-activations by ‖W_dec[i]‖ and divides codes by it before decoding; folding the norm
            # into the encoder and out of the decoder gives the same top k and the same reconstruction
            norm = decoder.norm(dim=1)
            if not bool((norm > 0).all()):
                raise InputError("This SAE rescales by its decoder norms, and one decoder row is zero.")
            encoder, encoder_bias, decoder = encoder * norm[:, None], encoder_bias * norm, decoder / norm[:, None]
    return SparseAutoencoder(
        encoder_weight=encoder,
        encoder_bias=encoder_bias,
        decoder_weight=decoder,
        decoder_bias=_tensor(tensors, "b_dec", SAELENS_WEIGHTS),
        hook_name=hook_name,
        activation={"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}[architecture],
        k=k,
        threshold=threshold,
        subtract_decoder_bias=bool(config.get("apply_b_dec_to_input", True)),
        source="saelens",
    )
