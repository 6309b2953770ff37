"""A Steerscope vector run in llama.cpp itself: the exported control vector on the same GGUF model.

:meth:`SteeringVector.to_gguf` writes llama.cpp's control-vector file; this module loads it the way
llama.cpp's own loader does (``llama_control_vector_load`` in its ``common`` library, which the Python
binding does not include) and hands it to the library through ``llama_set_adapter_cvec``. That is
the independent check of the export: the same model file, another engine (its own Q4_1 kernels,
its own graph), and the vector added wherever llama.cpp adds ``direction.{il}`` — to the output of
block ``il``, never block 0's.

llama-cpp-python has no wheel for this platform: ``make llama-cpp`` builds it once into the cache.

Example:
    >>> llm = LlamaCppModel.load()  # the embedded SmolLM2 GGUF
    >>> with llm.control_vector(vector.to_gguf(), strength=3.0):
    ...     llm.generate("I think the weather today is", max_new_tokens=20).text
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interp.errors import InputError
from interp.validation import check_finite
from steering.vector import read_control_vector


@dataclasses.dataclass(frozen=True)
class LlamaCppGeneration:
    """One continuation written by llama.cpp; ids are the GGUF vocabulary's (the same as Steerscope's for its model)."""

    prompt_token_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    text: str
    finish_reason: str  # "eos" or "length"


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise RuntimeError(
            "llama-cpp-python is not installed (no wheel fits this platform): run `make llama-cpp`, which builds it "
            "once from source into the cache (~11 CPU-minutes) and installs it."
        ) from None
    return llama_cpp


def control_vector_data(data: bytes, n_embd: int, n_layer: int, *, strength: float = 1.0) -> np.ndarray:
    """The flat buffer ``llama_set_adapter_cvec`` takes: ``direction.{il}`` × strength at rows ``il - 1``, il = 1..n_layer-1.

    Mirrors llama.cpp's ``llama_control_vector_load_one``: tensors named ``direction.N`` with N ≥ 1 (block 0's
    output has no slot), each ``n_embd`` floats; blocks the file does not name stay zero.

    Returns:
        float32 ``[(n_layer - 1) * n_embd]``.
    """
    check_finite("strength", float(strength))
    buffer = np.zeros(((n_layer - 1), n_embd), dtype=np.float32)
    for block, row in read_control_vector("The control-vector file", data).rows.items():
        if not 1 <= block < n_layer:
            raise InputError(
                f"Tensor 'direction.{block}': llama.cpp takes direction.N with N in 1..{n_layer - 1} (the block whose "
                "output it is added to)."
            )
        if row.shape[0] != n_embd:
            raise InputError(f"Tensor 'direction.{block}' is {row.shape[0]} wide but the model's n_embd is {n_embd}.")
        buffer[block - 1] = row * np.float32(strength)
    return buffer.reshape(-1)


class LlamaCppModel:
    """A GGUF model loaded in llama.cpp (one context), with greedy or seeded generation and next-token log-probs.

    Not thread-safe: the control vector belongs to the context, so one caller at a time.
    """

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        lib = _llama_cpp()
        self.n_embd = int(lib.llama_model_n_embd(llm.model))
        self.n_layer = int(lib.llama_model_n_layer(llm.model))
        self.n_vocab = int(llm.n_vocab())

    @classmethod
    def load(
        cls, model_path: str | Path | None = None, *, n_ctx: int = 256, seed: int = 0, n_threads: int | None = None
    ) -> LlamaCppModel:
        """Load ``model_path`` (default: the embedded SmolLM2 GGUF that Steerscope itself loads) in llama.cpp.

        Args:
            n_ctx: Context length in tokens (prompt + continuation).
            n_threads: CPU threads (default: every core this process may use).
        """
        llama_cpp = _llama_cpp()
        if model_path is None:
            from interp.loading import default_gguf_path

            model_path = default_gguf_path()
        path = Path(model_path)
        if not path.is_file():
            raise InputError(f"No GGUF model at {path}; give the path of a .gguf file.")
        threads = n_threads or len(os.sched_getaffinity(0))
        # logits_all: keep every position's logits, for :meth:`logprobs` (n_ctx x n_vocab floats: 25 MB for SmolLM2 at 128).
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, seed=seed, n_threads=threads, logits_all=True, verbose=False)
        return cls(llm)

    def close(self) -> None:
        """Free the model and context now (else at garbage collection, which at interpreter exit can be too late)."""
        self.llm.close()

    # -- the control vector ---------------------------------------------------------------------

    def set_control_vector(self, data: bytes | None, *, strength: float = 1.0) -> None:
        """Add the GGUF control vector ``data`` (× strength) from now on; ``None`` removes it."""
        lib = _llama_cpp()
        if data is None:
            status = lib.llama_set_adapter_cvec(self.llm.ctx, None, 0, self.n_embd, -1, -1)
        else:
            buffer = control_vector_data(data, self.n_embd, self.n_layer, strength=strength)
            pointer = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))  # llama.cpp copies it into its own tensors
            status = lib.llama_set_adapter_cvec(self.llm.ctx, pointer, buffer.size, self.n_embd, 1, self.n_layer - 1)
        if status != 0:
            raise RuntimeError(f"llama.cpp refused the control vector (llama_set_adapter_cvec returned {status}).")
        self.llm.reset()  # the KV cache holds activations made with the old vector: never reuse it

    @contextlib.contextmanager
    def control_vector(self, data: bytes, *, strength: float = 1.0) -> Iterator[LlamaCppModel]:
        """Steer every run inside the block with ``data`` (a control-vector GGUF), like ``llama-cli --control-vector-scaled``."""
        self.set_control_vector(data, strength=strength)
        try:
            yield self
        finally:
            self.set_control_vector(None)

    # -- running --------------------------------------------------------------------------------

    def tokenize(self, prompt: str | Sequence[int]) -> list[int]:
        """Token ids: ``prompt`` as they are if ids, else llama.cpp's tokenizer (BOS as the GGUF says)."""
        if isinstance(prompt, str):
            ids = list(self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))
        else:
            ids = [int(i) for i in prompt]
            if not ids or min(ids) < 0 or max(ids) >= self.n_vocab:
                raise InputError(f"Token ids must be a non-empty list of whole numbers in 0..{self.n_vocab - 1}.")
        if len(ids) > self.llm.n_ctx():
            raise InputError(f"{len(ids)} tokens exceed the context of {self.llm.n_ctx()}; load with a larger n_ctx.")
        return ids

    def _last_logits(self) -> np.ndarray:
        pointer = _llama_cpp().llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).astype(np.float64)

    def next_token_logprobs(self, prompt: str | Sequence[int]) -> np.ndarray:
        """Natural-log probabilities ``[n_vocab]`` of the token after ``prompt``."""
        ids = self.tokenize(prompt)
        self.llm.reset()
        self.llm.eval(ids)
        return _log_softmax(self._last_logits())

    def logprobs(self, ids: Sequence[int]) -> np.ndarray:
        """Natural-log probabilities ``[len(ids), n_vocab]``: row ``t`` is the distribution of the token after ``ids[:t + 1]``."""
        ids = self.tokenize(ids)
        self.llm.reset()
        self.llm.eval(ids)
        return np.stack([_log_softmax(row.astype(np.float64)) for row in self.llm.scores[: len(ids)]])

    def generate(
        self,
        prompt: str | Sequence[int],
        *,
        max_new_tokens: int = 32,
        temperature: float = 0.0,
        seed: int | None = None,
        stop_at_eos: bool = True,
    ) -> LlamaCppGeneration:
        """Greedy (``temperature`` 0) or seeded sampling from the full softmax at ``temperature``, under the current vector."""
        check_finite("temperature", float(temperature))
        if temperature < 0:
            raise InputError(f"Temperature must be 0 (greedy) or positive (got {temperature:g}).")
        ids = self.tokenize(prompt)
        if len(ids) + max_new_tokens > self.llm.n_ctx():
            raise InputError(f"{len(ids)} prompt + {max_new_tokens} new tokens exceed the context of {self.llm.n_ctx()}.")
        rng = np.random.default_rng(seed)
        eos = int(self.llm.token_eos())
        self.llm.reset()
        self.llm.eval(ids)
        out: list[int] = []
        reason = "length"
        for _ in range(max_new_tokens):
            logits = self._last_logits()
            if temperature == 0:
                token = int(np.argmax(logits))
            else:
                token = int(rng.choice(self.n_vocab, p=np.exp(_log_softmax(logits / temperature))))
            if stop_at_eos and token == eos:
                reason = "eos"
                break
            out.append(token)
            self.llm.eval([token])
        text = self.llm.detokenize(out).decode("utf-8", errors="replace")
        return LlamaCppGeneration(tuple(ids), tuple(out), text, reason)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())
