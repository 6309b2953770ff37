"""A model with a planted induction circuit, trained here, to prove the circuit methods on.

Induction (Olsson et al. 2022) is the two-head circuit behind in-context copying: a
*previous-token head* in layer 0 writes "the token before me was A" into each position, and an
*induction head* in layer 1 uses it (K-composition) to find the earlier position whose previous
token matches the current one, and copies what came next. On ``... A B ... A`` it predicts ``B``.

The model is a standard 2-layer, 4-head Llama (so it loads through ``interp.load_model(folder)``
and the TransformerLens bridge) made attention-only in effect: every MLP's output projection is
zeroed and frozen. The circuit is planted by construction: in each layer only one head may write
to the residual stream (the others' output columns are zeroed and kept zero; they still compute
attention patterns). If the model is to copy at all, L0.H1 must become the previous-token head
and L1.H2 the induction head — and inspecting the trained patterns confirms it (the card records
the scores). Measured alternatives that did not give a single known circuit: with every head free,
induction spread over three redundant layer-1 heads; a GPT-2 with learned absolute positions
learned to copy from fixed positions; two 32-dimensional heads per layer copied without any
previous-token or induction pattern. It is trained on random token sequences in which a segment of random length (8-20
tokens) at a random offset appears again later. Random offsets and lengths matter: with a fixed
period the model could predict from positions alone, with no induction at all. Half the loss is
the ordinary next-token loss (so unpredictable tokens stay near the uniform log 64 nats) and half
is the loss on the repeated tokens, the only ones induction can predict, which makes the circuit
form in ~1,500 steps instead of tens of thousands.

Run ``python -m interp.toy.induction --out interp/toy/induction_model`` to retrain the shipped
weights (about a minute on 2 CPU cores); the card beside them records the seed, the recipe, the
losses and which heads form the circuit, found once by inspecting attention patterns.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

VOCAB = 64  # ordinary tokens t0 .. t63; id 64 is the special <|endoftext|>
SEQ_LEN = 64
SEGMENT_LENGTHS = (6, 30)
D_MODEL = 64
N_HEADS = 4
LIVE_HEADS = ((1,), (2,))  # per layer: the heads allowed to write to the residual stream
SHIPPED = Path(__file__).resolve().parent / "induction_model"


@dataclasses.dataclass(frozen=True)
class TrainingReport:
    seed: int
    steps: int
    seconds: float
    loss_repeated: float  # nats per token on tokens induction can predict
    loss_other: float  # nats per token on the rest (uniform guessing is log 64 = 4.16)
    loss_curve: tuple[tuple[int, float, float], ...]  # (step, repeated, other)


def build_tokenizer(words: list[str] | None = None):
    """A word-level tokenizer over ``words`` (default ``t0 .. t63``; space separated), saved beside the weights.

    The special ``<|endoftext|>`` comes last, with id ``len(words)``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = words if words is not None else [f"t{i}" for i in range(VOCAB)]
    vocab = {word: i for i, word in enumerate(words)} | {"<|endoftext|>": len(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins word tokens with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def repeated_segment_batch(n: int, generator: torch.Generator, seq_len: int = SEQ_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens where one segment of random length at a random offset repeats later.

    Returns:
        tokens ``[n, seq_len]`` and a mask of the positions whose token induction can predict
        (inside the second copy, after its first token).
    """
    tokens = torch.randint(0, VOCAB, (n, seq_len), generator=generator)
    predictable = torch.zeros(n, seq_len, dtype=torch.bool)
    low, high = SEGMENT_LENGTHS
    for i in range(n):
        length = int(torch.randint(low, high + 1, (1,), generator=generator))
        first = int(torch.randint(0, seq_len - 2 * length + 1, (1,), generator=generator))
        second = int(torch.randint(first + length, seq_len - length + 1, (1,), generator=generator))
        tokens[i, second : second + length] = tokens[i, first : first + length]
        predictable[i, second + 1 : second + length] = True
    return tokens, predictable


def new_model(seed: int, *, vocab: int = VOCAB, seq_len: int = SEQ_LEN, live_heads: tuple = LIVE_HEADS):
    """A 2-layer Llama whose MLPs write nothing and in which only ``live_heads`` (per layer) write to the residual."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab + 1,
        hidden_size=D_MODEL,
        intermediate_size=32,  # zeroed and frozen; kept small
        num_hidden_layers=2,
        num_attention_heads=N_HEADS,
        num_key_value_heads=N_HEADS,
        max_position_embeddings=seq_len,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=vocab,
        eos_token_id=vocab,
        pad_token_id=vocab,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    for layer in model.model.layers:  # attention-only in effect: MLPs write nothing, ever
        layer.mlp.down_proj.weight.data.zero_()
        layer.mlp.down_proj.weight.requires_grad_(False)
    _silence_heads(model, live_heads)
    return model


def _silence_heads(model, live_heads: tuple = LIVE_HEADS) -> None:
    """Zero the output weights of the heads outside ``LIVE_HEADS`` and keep them zero during training.

    A gradient hook on ``o_proj`` masks their columns, so those heads still compute patterns but
    write nothing. Measured without it: the model spreads induction over three redundant layer-1
    heads, so no single head is "the" induction head and single-head ablations barely matter.
    """
    for layer_index, layer in enumerate(model.model.layers):
        mask = torch.zeros(N_HEADS)
        mask[list(live_heads[layer_index])] = 1.0
        column_mask = mask.repeat_interleave(D_MODEL // N_HEADS)[None, :]  # [1, n_heads * d_head]
        layer.self_attn.o_proj.weight.data.mul_(column_mask)
        layer.self_attn.o_proj.weight.register_hook(lambda grad, m=column_mask: grad * m)


def train(
    *,
    seed: int = 0,
    steps: int = 3000,
    batch: int = 64,
    lr: float = 3e-3,
    progress: Callable[[int, float, float], None] | None = None,
):
    """Train the toy model; returns ``(model, report)``. Deterministic for a seed (on CPU)."""
    torch.manual_seed(seed)
    model = new_model(seed)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    curve = []
    start = time.perf_counter()
    model.train()
    for step in range(steps + 1):
        tokens, predictable = repeated_segment_batch(batch, generator)
        logits = model(tokens).logits[:, :-1]
        per_token = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB + 1), tokens[:, 1:].reshape(-1), reduction="none")
        per_token = per_token.view(batch, -1)
        mask = predictable[:, 1:]
        loss = 0.5 * per_token.mean() + 0.5 * per_token[mask].mean()
        if step < steps:
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if step % 250 == 0 or step == steps:
            repeated, other = per_token[mask].mean().item(), per_token[~mask].mean().item()
            curve.append((step, round(repeated, 4), round(other, 4)))
            if progress is not None:
                progress(step, repeated, other)
    model.eval()
    with torch.no_grad():  # held-out evaluation on fresh sequences
        tokens, predictable = repeated_segment_batch(512, torch.Generator().manual_seed(seed + 1))
        per_token = torch.nn.functional.cross_entropy(
            model(tokens).logits[:, :-1].reshape(-1, VOCAB + 1), tokens[:, 1:].reshape(-1), reduction="none"
        ).view(512, -1)
        mask = predictable[:, 1:]
        report = TrainingReport(
            seed, steps, time.perf_counter() - start, per_token[mask].mean().item(), per_token[~mask].mean().item(), tuple(curve)
        )
    return model, report


def save(model, report: TrainingReport, folder: Path) -> Path:
    """Write weights (safetensors), config, tokenizer and a card; find the circuit heads once."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    from interp.attention import compute_head_scores
    from interp.loading import load_model

    scores = compute_head_scores(load_model(folder, device="cpu"), n_sequences=16, repeat_length=SEQ_LEN // 2)
    previous = scores.top_heads("previous_token", 1)[0]
    induction = scores.top_heads("induction", 1)[0]
    card = {
        "model": "2-layer attention-only (MLP down_proj zeroed and frozen) Llama with RoPE, d_model 64, 4 heads, vocab 64 + 1",
        "seed": report.seed,
        "steps": report.steps,
        "train_seconds": round(report.seconds, 1),
        "data": (
            f"random tokens t0..t63, length {SEQ_LEN}; one segment of {SEGMENT_LENGTHS[0]}-{SEGMENT_LENGTHS[1]} tokens "
            "at a random offset repeats at a random later offset; loss = 0.5 * next-token loss on all tokens + "
            "0.5 * loss on the predictable repeated tokens; AdamW lr 3e-3, batch 64"
        ),
        "held_out_loss_repeated_nats": round(report.loss_repeated, 4),
        "held_out_loss_other_nats": round(report.loss_other, 4),
        "loss_curve": [{"step": s, "repeated": r, "other": o} for s, r, o in report.loss_curve],
        "circuit": {
            "previous_token_head": {"layer": previous[0], "head": previous[1], "previous_token_score": round(previous[2], 3)},
            "induction_head": {"layer": induction[0], "head": induction[1], "induction_score": round(induction[2], 3)},
            "found_by": "attention-pattern scores on 16 repeated random sequences (interp.attention.head_scores), once, "
            "not by the ablation or patching methods this model is used to test",
        },
    }
    (folder / "card.json").write_text(json.dumps(card, indent=1))
    return folder


def load_card(folder: Path = SHIPPED) -> dict:
    return json.loads((folder / "card.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp.toy.induction", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SHIPPED)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args(argv)
    model, report = train(
        seed=args.seed,
        steps=args.steps,
        progress=lambda s, r, o: print(f"step {s}: repeated {r:.3f} nats, other {o:.3f} nats", flush=True),
    )
    save(model, report, args.out)
    print(json.dumps(load_card(args.out)["circuit"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
