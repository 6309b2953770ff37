"""A second model with a planted circuit, of another structure: a key-value lookup by query composition.

Each sequence is ``K3 k1v5 k3v0 k6v2 ... ?``: a query key first, then pairs (one token each: a key and its
value), then ``?``; the answer is the value paired with the query key (``V0``). At ``?`` the model cannot see the
query key, so the circuit needs two heads in series:

* a *mover* head in layer 0 (L0.H1) attends from ``?`` to the query key and writes it there;
* a *lookup* head in layer 1 (L1.H2) uses that in its **query** (Q-composition: the induction model composes on
  the key side instead) to find the pair whose own token holds the key, and copies its value to the logits.

Nothing else can do it: layer 0 sees only tokens, and a pair position cannot multiply "which key was asked" with
"my key" in a linear key projection, so the product must happen between a query that carries the asked key and
a key that carries the pair's own. As in :mod:`interp.toy.induction`, the model is a 2-layer Llama whose MLPs
write nothing and in which one head per layer may write (so the circuit is known by construction); which heads
attend where is checked once on the trained weights and recorded in the card.

Corrupting the query key for another key of the same sequence flips the answer, and touches no pair token: the
faithful circuit is input -> L0.H1 (its value: the asked key) -> L1.H2's query -> logits.

Run ``python -m interp.toy.lookup`` to retrain the shipped weights (about a minute on one CPU core); seed 0 stalled
at 55% held-out accuracy, seed 1 reaches 100% (the card records it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interp.toy.induction import build_tokenizer, new_model

N_KEYS = 8
N_VALUES = 8
N_PAIRS = 6
PAIRS = [f"k{key}v{value}" for key in range(N_KEYS) for value in range(N_VALUES)]  # ids 0 .. 63
QUERIES = [f"K{key}" for key in range(N_KEYS)]  # ids 64 .. 71
ANSWERS = [f"V{value}" for value in range(N_VALUES)]  # ids 72 .. 79
WORDS = [*PAIRS, *QUERIES, *ANSWERS, "?"]
ASK = len(WORDS) - 1
SEQ_LEN = N_PAIRS + 2
LIVE_HEADS = ((1,), (2,))
SHIPPED = Path(__file__).resolve().parent / "lookup_model"


def lookup_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` sequences, the same with the query key swapped for another key of the sequence, and both answers.

    Returns ``(clean, corrupted, answer ids, corrupted answer ids)``; the sequences are ``[n, SEQ_LEN]``.
    """
    clean = torch.empty(n, SEQ_LEN, dtype=torch.long)
    answers, other_answers = torch.empty(n, dtype=torch.long), torch.empty(n, dtype=torch.long)
    corrupted = torch.empty_like(clean)
    for i in range(n):
        keys = torch.randperm(N_KEYS, generator=generator)[:N_PAIRS]
        values = torch.randperm(N_VALUES, generator=generator)[:N_PAIRS]  # distinct: the swapped query flips the answer
        asked, other = torch.randperm(N_PAIRS, generator=generator)[:2].tolist()
        pairs = keys * N_VALUES + values
        clean[i] = torch.cat([torch.tensor([len(PAIRS) + int(keys[asked])]), pairs, torch.tensor([ASK])])
        corrupted[i] = clean[i]
        corrupted[i, 0] = len(PAIRS) + int(keys[other])
        answers[i] = len(PAIRS) + N_KEYS + int(values[asked])
        other_answers[i] = len(PAIRS) + N_KEYS + int(values[other])
    return clean, corrupted, answers, other_answers


def train(*, seed: int = 1, steps: int = 3000, batch: int = 128, lr: float = 3e-3):
    """Train on the answer at ``?`` only (nothing else in a sequence is predictable); returns ``(model, card)``."""
    torch.manual_seed(seed)
    model = new_model(seed, vocab=len(WORDS), seq_len=SEQ_LEN, live_heads=LIVE_HEADS)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        tokens, _, answers, _ = lookup_batch(batch, generator)
        loss = torch.nn.functional.cross_entropy(model(tokens).logits[:, -1], answers)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        tokens, _, answers, _ = lookup_batch(1024, torch.Generator().manual_seed(seed + 1))
        logits = model(tokens).logits[:, -1]
        held_out = {
            "loss_nats": round(torch.nn.functional.cross_entropy(logits, answers).item(), 4),
            "accuracy": round((logits.argmax(-1) == answers).float().mean().item(), 4),
        }
    return model, {"seed": seed, "steps": steps, "train_seconds": round(time.perf_counter() - start, 1), **held_out}


def save(model, card: dict, folder: Path = SHIPPED) -> Path:
    """Weights, tokenizer, and a card with the heads found by their attention at ``?`` (inspected once)."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    build_tokenizer(WORDS).save_pretrained(folder)
    tokens, _, _, _ = lookup_batch(256, torch.Generator().manual_seed(card["seed"] + 2))
    model.set_attn_implementation("eager")  # the fused kernel returns no attention weights
    with torch.no_grad():
        attentions = model(tokens, output_attentions=True).attentions  # per layer [batch, heads, query, key]
    model.set_attn_implementation("sdpa")
    mover = attentions[0][:, :, -1, 0].mean(0)  # layer 0, from ? to the query key
    keys = tokens[:, 1:-1] // N_VALUES
    asked = (tokens[:, 0] - len(PAIRS))[:, None]
    matching = torch.nn.functional.pad((keys == asked).float(), (1, 1))  # [batch, pos]: the pair with the asked key
    lookup = (attentions[1][:, :, -1, :] * matching[:, None, :]).sum(-1).mean(0)  # layer 1, from ? to that pair
    card = {
        "model": "2-layer attention-only (MLP down_proj zeroed and frozen) Llama with RoPE, d_model 64, 4 heads",
        "data": f"query key, {N_PAIRS} key-value pair tokens (distinct keys and values of {N_KEYS}), '?'; loss on the answer",
        **card,
        "circuit": {
            "mover_head": {"layer": 0, "head": int(mover.argmax()), "attention_to_query_key": round(float(mover.max()), 3)},
            "lookup_head": {"layer": 1, "head": int(lookup.argmax()),
                            "attention_to_matching_pair": round(float(lookup.max()), 3)},
            "found_by": "mean attention from '?' over 256 held-out sequences, once, not by the methods tested on it",
        },
    }  # fmt: skip
    (folder / "card.json").write_text(json.dumps(card, indent=1))
    return folder


def load_card(folder: Path = SHIPPED) -> dict:
    return json.loads((folder / "card.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interp.toy.lookup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SHIPPED)
    parser.add_argument("--seed", type=int, default=1)  # seed 0 (and lr 1e-2) stalled below 60% accuracy
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    model, card = train(seed=args.seed, steps=args.steps, lr=args.lr)
    save(model, card, args.out)
    print(json.dumps(load_card(args.out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
