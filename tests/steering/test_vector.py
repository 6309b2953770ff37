"""SteeringVector: arithmetic, checks, and exact round trips through every file format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp import InputError
from steering.vector import SteeringVector, load_vector


def make(model, layers=(0, 1), seed=0, scale=1.0, hook_point="resid_pre") -> SteeringVector:
    generator = torch.Generator().manual_seed(seed)
    return SteeringVector(
        layers=tuple(layers),
        directions=torch.randn(len(layers), model.info.d_model, generator=generator) * scale,
        hook_point=hook_point,
        model_name=model.info.name,
        d_model=model.info.d_model,
        weights_sha256=model.info.weights_sha256,
        method="test",
        source="random",
    )


def test_arithmetic_is_elementwise_over_the_union_of_layers(tiny_llama):
    a, b = make(tiny_llama, (0, 1), seed=1), make(tiny_llama, (1,), seed=2)
    total = a + b
    assert total.layers == (0, 1)
    assert torch.equal(total.direction(0), a.direction(0))
    assert torch.equal(total.direction(1), a.direction(1) + b.direction(1))
    assert torch.allclose((0.5 * a).directions, a.directions * 0.5)
    assert torch.allclose((a * 2).directions, (a + a).directions)
    assert torch.allclose((a - a).directions, torch.zeros_like(a.directions))
    assert (-a).norm() == pytest.approx(a.norm())
    assert a.norm() == pytest.approx(float(torch.cat([a.direction(0), a.direction(1)]).norm()))
    assert set(a.norms()) == {0, 1}


def test_incompatible_vectors_do_not_combine(tiny_llama):
    other = SteeringVector(layers=(0,), directions=torch.zeros(1, 32), d_model=32)
    with pytest.raises(InputError, match="width"):
        make(tiny_llama) + other


def test_vector_must_fit_the_model(tiny_llama):
    with pytest.raises(InputError, match="64 wide|d_model"):
        SteeringVector(layers=(0,), directions=torch.zeros(1, 32), d_model=32).check_for(tiny_llama)
    with pytest.raises(InputError, match="do not exist"):
        make(tiny_llama, layers=(5,)).check_for(tiny_llama)
    bad = make(tiny_llama)
    bad.directions[0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        bad.check_for(tiny_llama)


def test_safetensors_round_trip_is_exact(tiny_llama, tmp_path):
    vector = make(tiny_llama)
    path = vector.save(tmp_path / "v.safetensors")
    loaded = load_vector(path.name, path.read_bytes(), tiny_llama)
    assert loaded.equals(vector) and loaded.method == "test" and loaded.source == "random"


def test_gguf_round_trip_is_exact_and_has_llama_cpp_layout(tiny_llama, tmp_path):
    import gguf

    vector = make(tiny_llama, layers=(1,), hook_point="resid_post")  # llama.cpp's direction.1
    data = vector.to_gguf(model_hint="llama")
    path = tmp_path / "v.gguf"
    path.write_bytes(data)
    reader = gguf.GGUFReader(path)
    field = reader.fields["general.architecture"]
    assert bytes(field.parts[field.data[0]]).decode() == "controlvector"
    hint = reader.fields["controlvector.model_hint"]
    assert bytes(hint.parts[hint.data[0]]).decode() == "llama"
    count = reader.fields["controlvector.layer_count"]
    assert int(count.parts[count.data[0]][0]) == 1
    assert [t.name for t in reader.tensors] == ["direction.1"]
    assert reader.tensors[0].data.dtype == np.float32 and reader.tensors[0].data.size == tiny_llama.info.d_model
    back = load_vector("v.gguf", data, tiny_llama)
    assert back.layers == (1,) and back.hook_point == "resid_post" and torch.equal(back.directions, vector.directions)


def test_resid_pre_vectors_export_as_the_previous_blocks_output(tiny_llama):
    """resid_pre of block L is the output of block L-1: the exported vector steers identically."""
    from interp.forward import run_logits
    from interp.tokens import as_batch, tokenize
    from steering.apply import steer

    vector = make(tiny_llama, layers=(1,))
    with pytest.raises(InputError, match="block 0"):
        vector.to_gguf()  # block 0's output is where resid_pre 1 lives, and llama.cpp cannot steer it
    as_post = make(tiny_llama, layers=(0,), hook_point="resid_post")
    same = type(vector)(layers=(1,), directions=as_post.directions, d_model=vector.d_model, model_name=vector.model_name)
    ids = as_batch(tokenize(tiny_llama, "When Mary and John went to the store"), tiny_llama)
    with steer(tiny_llama, as_post, 2.0):
        post = run_logits(tiny_llama, ids)
    with steer(tiny_llama, same, 2.0):
        pre = run_logits(tiny_llama, ids)
    assert torch.equal(post, pre)


def test_npy_import_refuses_pickles_and_needs_layers(tiny_llama, tmp_path):
    vector = make(tiny_llama, layers=(0, 1))
    back = load_vector("v.npy", vector.to_npy(), tiny_llama)  # one row per layer of the model
    assert torch.equal(back.directions, vector.directions.float())
    one = make(tiny_llama, layers=(1,))
    with pytest.raises(InputError, match="no layers"):
        load_vector("v.npy", one.to_npy(), None)
    assert load_vector("v.npy", one.to_npy(), tiny_llama, layers=[1]).layers == (1,)
    with pytest.raises(InputError, match="Pickled arrays are refused|not a plain numeric"):
        load_vector("p.npy", _object_npy(), tiny_llama)


def _object_npy() -> bytes:
    """A .npy file whose payload is a pickle (an object array), written by hand: what we must refuse."""
    import io
    import pickle

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    buffer.write(pickle.dumps([{"evil": 1}]))
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("v.pt", b"\x80\x04", "unknown vector file type '.pt'"),
        ("v.safetensors", b"not safetensors", "not a readable safetensors file"),
        ("v.gguf", b"GGUF\x03\x00", "not a readable GGUF file"),
    ],
)
def test_bad_uploads_get_clear_messages(tiny_llama, name, data, message):
    with pytest.raises(InputError, match=message):
        load_vector(name, data, tiny_llama)


def test_uploaded_vectors_with_absurd_norms_are_refused(tiny_llama):
    huge = make(tiny_llama, scale=1e9)
    with pytest.raises(InputError, match="over 1000x"):
        load_vector("v.safetensors", huge.to_safetensors(), tiny_llama)
