"""Tiny randomly-initialised checkpoints that tests save to disk and load like real ones.

Saving them to a folder and loading them through ``interp.load_model(folder)`` exercises the
same path a user's local checkpoint takes. The tokenizer is a small byte-level BPE trained here
on a fixed text, so the whole fixture is deterministic and offline.
"""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The Eiffel Tower is in the city of Paris. The Colosseum is in Rome.",
    "I love dogs because they are loyal, and I hate rain because it is cold.",
    "def add(a, b):\n    return a + b\n",
    "Steering vectors add a direction to the residual stream of a transformer.",
] * 20


def train_tokenizer(vocab_size: int = 384):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )


def save_tiny_llama(folder: Path, *, seed: int = 0, n_layers: int = 2, init_scale: float = 8.0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, as in SmolLM2
        max_position_embeddings=256,
        rope_theta=10000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    _enlarge_init(model, init_scale)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_gpt2(folder: Path, *, seed: int = 0) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = train_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    _enlarge_init(model, 8.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _enlarge_init(model: torch.nn.Module, scale: float) -> None:
    """Scale weights up from HF's 0.02 init so attention patterns and logits are not flat.

    With the default init every random model predicts a near-uniform distribution, which makes
    parity tests weak (everything agrees with everything) and greedy decoding tie-prone.
    """
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(scale)


def save_trained_first_token_llama(folder: Path, *, seed: int = 0, steps: int = 300) -> Path:
    """A tiny Llama trained until its next token is the *first* token of the prompt.

    A circuit planted by training: the answer depends on position 0 alone, so a faithful
    attribution must put the most weight there, and a re-initialised copy must not.
    """
    from transformers import LlamaForCausalLM

    save_tiny_llama(folder, seed=seed)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        tokens = torch.randint(10, 60, (64, FIRST_TOKEN_LENGTH), generator=generator)
        logits = model(tokens).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, tokens[:, 0])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.save_pretrained(folder)
    return folder


FIRST_TOKEN_LENGTH = 8
