"""SAE folders: Steerscope's own round trip, sparsify's own files against sparsify's encoder, SAELens's layout
against its published formulas, and refusals that say what to fix."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from features.files import load_sae, save_sae
from features.sae import SparseAutoencoder
from interp.errors import InputError

D_IN, D_SAE, K = 12, 40, 5


def random_topk(seed: int = 0, hook_name: str = "blocks.1.hook_resid_post") -> SparseAutoencoder:
    g = torch.Generator().manual_seed(seed)
    decoder = torch.randn(D_SAE, D_IN, generator=g)
    return SparseAutoencoder(
        encoder_weight=torch.randn(D_SAE, D_IN, generator=g),
        encoder_bias=torch.randn(D_SAE, generator=g) * 0.1,
        decoder_weight=decoder / decoder.norm(dim=1, keepdim=True),
        decoder_bias=torch.randn(D_IN, generator=g),
        hook_name=hook_name,
        k=K,
    )


def activations(seed: int = 1) -> torch.Tensor:
    return torch.randn(64, D_IN, generator=torch.Generator().manual_seed(seed)) * 2


def sparsify_module():
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")
    import sparsify

    return sparsify


def test_our_folder_round_trips_in_fp16_and_keeps_its_card(tmp_path):
    sae = random_topk()
    card = {"tokens": 1000, "data": "test", "metrics": {"fvu": 0.3}}
    folder = save_sae(sae, tmp_path / "sae", card)
    loaded = load_sae(folder, d_model=D_IN)
    assert loaded.layout == "steerscope" and loaded.sae.hook_name == sae.hook_name and loaded.sae.k == K
    assert loaded.card["metrics"] == {"fvu": 0.3} and loaded.card["tokens"] == 1000
    for name in ("encoder_weight", "encoder_bias", "decoder_weight", "decoder_bias"):
        torch.testing.assert_close(getattr(loaded.sae, name), getattr(sae, name).half().float(), atol=0, rtol=0)


def test_sparsify_opens_our_folder_and_encodes_like_we_do(tmp_path):
    sparsify = sparsify_module()
    sae = random_topk()
    folder = save_sae(sae, tmp_path / "sae", {}, dtype=torch.float32)
    theirs = sparsify.SparseCoder.load_from_disk(folder)
    x = activations()
    out = theirs.encode(x)
    code = torch.zeros(64, D_SAE).scatter_(-1, out.top_indices, out.top_acts)
    torch.testing.assert_close(sae.encode(x), code, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.decode(code), theirs.decode(out.top_acts, out.top_indices), atol=1e-5, rtol=1e-5)


def test_a_folder_sparsify_wrote_reads_and_encodes_like_sparsify(tmp_path):
    sparsify = sparsify_module()
    torch.manual_seed(3)
    coder = sparsify.SparseCoder(D_IN, sparsify.SparseCoderConfig(num_latents=D_SAE, k=K), device="cpu")
    with torch.no_grad():
        coder.encoder.bias.normal_(0, 0.1)
        coder.b_dec.normal_()
    coder.save_to_disk(tmp_path / "layers.1")  # sparsify names the folder after the module it read
    loaded = load_sae(tmp_path / "layers.1", d_model=D_IN)
    assert loaded.layout == "sparsify" and loaded.sae.hook_name == "blocks.1.hook_resid_post" and loaded.card == {}
    x = activations()
    out = coder.encode(x)
    code = torch.zeros(64, D_SAE).scatter_(-1, out.top_indices, out.top_acts.detach())
    torch.testing.assert_close(loaded.sae.encode(x), code, atol=1e-5, rtol=1e-5)
    reconstruction = coder(x).sae_out.detach()
    torch.testing.assert_close(loaded.sae.reconstruct(x), reconstruction, atol=1e-5, rtol=1e-5)


def write_saelens(folder, config: dict, tensors: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(config))
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(folder / "sae_weights.safetensors"))


def saelens_tensors(seed: int = 5, decoder_scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(D_IN, D_SAE, generator=g),
        "b_enc": torch.randn(D_SAE, generator=g) * 0.1,
        "W_dec": torch.randn(D_SAE, D_IN, generator=g) * decoder_scale,
        "b_dec": torch.randn(D_IN, generator=g),
        "threshold": torch.rand(D_SAE, generator=g),
    }


def saelens_forward(t: dict, x: torch.Tensor, architecture: str, *, k: int = 0, rescale: bool = False, b_dec_in=True):
    """SAELens's encode/decode as its source writes them (sae.py, topk_sae.py, jumprelu_sae.py), in plain torch."""
    h = (x - t["b_dec"] * b_dec_in) @ t["W_enc"] + t["b_enc"]
    norms = t["W_dec"].norm(dim=1)
    if architecture == "standard":
        a = torch.relu(h)
    elif architecture == "jumprelu":
        a = torch.relu(h) * (h > t["threshold"])
    else:
        h = h * norms if rescale else h
        top = h.topk(k, dim=-1)
        a = torch.zeros_like(h).scatter_(-1, top.indices, top.values.relu())
    decoded = (a / norms if rescale else a) @ t["W_dec"] + t["b_dec"]
    return a, decoded


V6 = {"d_in": D_IN, "d_sae": D_SAE, "apply_b_dec_to_input": True, "normalize_activations": "none",
      "metadata": {"sae_lens_version": "6.5.0", "hook_name": "blocks.1.hook_resid_pre"}}  # fmt: skip


@pytest.mark.parametrize(
    "extra, architecture",
    [
        ({"architecture": "standard"}, "standard"),
        ({"architecture": "jumprelu"}, "jumprelu"),
        ({"architecture": "topk", "k": K, "rescale_acts_by_decoder_norm": False}, "topk"),
        ({"architecture": "topk", "k": K, "rescale_acts_by_decoder_norm": True}, "topk"),
        ({"architecture": "standard", "apply_b_dec_to_input": False}, "standard"),
    ],
)
def test_saelens_folders_reconstruct_as_saelens_computes(tmp_path, extra, architecture):
    tensors = saelens_tensors(decoder_scale=3.0)  # decoder rows far from unit norm: rescaling matters
    write_saelens(tmp_path / "s", {**V6, **extra}, tensors)
    sae = load_sae(tmp_path / "s", d_model=D_IN).sae
    x = activations()
    rescale = bool(extra.get("rescale_acts_by_decoder_norm"))
    code, decoded = saelens_forward(
        tensors, x, architecture, k=K, rescale=rescale, b_dec_in=extra.get("apply_b_dec_to_input", True)
    )
    assert sae.hook_name == "blocks.1.hook_resid_pre"
    torch.testing.assert_close(sae.reconstruct(x), decoded, atol=1e-4, rtol=1e-4)
    # the same latents fire (their values differ by the decoder norm when the norm is folded in)
    assert torch.equal(sae.encode(x) > 0, code > 0)


def test_pre_6_saelens_configs_and_log_thresholds_are_read(tmp_path):
    tensors = saelens_tensors()
    old = {"d_in": D_IN, "d_sae": D_SAE, "hook_point": "blocks.0.hook_resid_post", "activation_fn_str": "topk",
           "activation_fn_kwargs": {"k": K}, "normalize_activations": False}  # fmt: skip
    write_saelens(tmp_path / "old", old, {n: t for n, t in tensors.items() if n != "threshold"})
    sae = load_sae(tmp_path / "old").sae
    assert (sae.activation, sae.k, sae.hook_name) == ("topk", K, "blocks.0.hook_resid_post")
    log = {n: t for n, t in tensors.items() if n != "threshold"} | {"log_threshold": tensors["threshold"].log()}
    write_saelens(tmp_path / "jump", {**V6, "architecture": "jumprelu"}, log)
    torch.testing.assert_close(load_sae(tmp_path / "jump").sae.threshold, tensors["threshold"])


def refusal_cases(tmp_path):
    """(folder, message) pairs, each a folder a user might hand over."""
    t = saelens_tensors()
    cases = []

    def case(name, config, tensors, message):
        write_saelens(tmp_path / name, config, tensors)
        cases.append((tmp_path / name, message))

    case(
        "normalised",
        {**V6, "architecture": "standard", "normalize_activations": "expected_average_only_in"},
        t,
        "normalises its input",
    )
    case("gated", {**V6, "architecture": "gated"}, t, "architecture is 'gated'")
    case("wrong_shape", {**V6, "d_sae": D_SAE + 1, "architecture": "standard"}, t, "needs")
    case("nan", {**V6, "architecture": "standard"}, t | {"W_dec": torch.full((D_SAE, D_IN), float("nan"))}, "NaN")
    case("no_hook", {**V6, "architecture": "standard", "metadata": {}}, t, "which hook point")
    case(
        "odd_hook",
        {**V6, "architecture": "standard", "metadata": {"hook_name": "blocks.0.attn.hook_z"}},
        t,
        "not one Steerscope reads",
    )
    case("no_bias", {**V6, "architecture": "standard"}, {n: v for n, v in t.items() if n != "b_dec"}, "no 'b_dec' tensor")
    case("jump_no_threshold", {**V6, "architecture": "jumprelu"}, {n: v for n, v in t.items() if n != "threshold"}, "threshold")
    pickle = tmp_path / "pickled"
    pickle.mkdir()
    (pickle / "sae.pt").write_bytes(b"\x80\x04not really")
    cases.append((pickle, "never opens"))
    broken = tmp_path / "broken_json"
    write_saelens(broken, {}, t)
    (broken / "cfg.json").write_text("{not json")
    cases.append((broken, "not valid JSON"))
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "cfg.json").write_text(json.dumps(V6))
    (garbage / "sae_weights.safetensors").write_bytes(b"\x00" * 64)
    cases.append((garbage, "not a readable safetensors"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "No SAE"))
    cases.append((tmp_path / "missing", "There is no folder"))
    return cases


def test_bad_folders_are_refused_with_what_to_fix(tmp_path):
    for folder, message in refusal_cases(tmp_path):
        with pytest.raises(InputError, match=message):
            load_sae(folder)


def test_an_sae_for_another_model_or_a_transcoder_is_refused(tmp_path):
    save_sae(random_topk(), tmp_path / "ours", {})
    with pytest.raises(InputError, match="trained for another model"):
        load_sae(tmp_path / "ours", d_model=D_IN * 2)
    sparsify = sparsify_module()
    coder = sparsify.SparseCoder(D_IN, sparsify.SparseCoderConfig(num_latents=D_SAE, k=K, transcode=True), device="cpu")
    coder.save_to_disk(tmp_path / "layers.0.mlp")
    with pytest.raises(InputError, match="transcoder"):
        load_sae(tmp_path / "layers.0.mlp")
    plain = sparsify.SparseCoder(D_IN, sparsify.SparseCoderConfig(num_latents=D_SAE, k=K), device="cpu")
    plain.save_to_disk(tmp_path / "somewhere")
    with pytest.raises(InputError, match="which hook point"):
        load_sae(tmp_path / "somewhere")
    assert load_sae(tmp_path / "somewhere", hook_name="blocks.3.hook_resid_post").sae.layer == 3
