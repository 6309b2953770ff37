"""Training a TopK sparse autoencoder with EleutherAI's sparsify, on activations from Steerscope's hook context.

Which trainer and why (docs/FEATURES.md): ``eai-sparsify`` installs cleanly next to the pinned torch and
TransformerLens 4 (SAELens needs TransformerLens < 4 and would downgrade it). Its :class:`sparsify.SparseCoder`
is the SAE being trained — encoder, TopK, decoder and FVU are sparsify's code; the AuxK loss is computed here
(:func:`_auxk_loss` says why). Its ``Trainer`` is
not used: it owns the model's forward pass (its own hooks on a Hugging Face model and a ``datasets`` pipeline),
while here activations must come through the one hook context the whole app shares, from a model truncated after
the SAE's layer (:mod:`features.activations`). The loop that remains is this module's:

* sparsify's initialisation (decoder = encoder rows, unit norm; encoder bias 0) under a fixed seed, and its
  decoder bias set to the first batch's mean;
* Adam at sparsify's width-scaled learning rate ``2e-4 / sqrt(d_sae / 2¹⁴)`` (its Adam default; the paper's
  optimiser), with AuxK weighted 1/32 as in Gao et al. (sparsify leaves AuxK off by default; on a short training
  run it is what keeps the dead fraction low);
* per step, sparsify's own invariants: decoder rows renormalised before the forward pass, the gradient along
  each row removed before the optimiser step;
* a latent is dead once it has not fired for ``dead_after_tokens`` (sparsify's 10 M is longer than a laptop run).

State (weights, Adam moments, each latent's tokens since it last fired, tokens seen) is plain tensors, written
to safetensors by :meth:`TopKTrainer.state_tensors`, so a stopped training resumes exactly (never pickle).
"""

from __future__ import annotations

import dataclasses
import math
import os

import torch

from features.sae import SparseAutoencoder
from interp.errors import InputError

AUX_COEFFICIENT = 1 / 32


def _sparsify():
    os.environ.setdefault("SPARSIFY_DISABLE_TRITON", "1")  # CPU: its Triton kernels cannot run here
    import sparsify

    return sparsify


@dataclasses.dataclass(frozen=True)
class TopKSettings:
    """What a TopK SAE's training is: its size and the optimiser's few knobs."""

    d_in: int
    d_sae: int
    k: int
    learning_rate: float = 0.0  # 0: sparsify's 2e-4 / sqrt(d_sae / 2**14)
    dead_after_tokens: int = 250_000  # a latent that has not fired for this many tokens is dead (and AuxK trains it)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.d_in < 1 or self.d_sae < 1:
            raise InputError("An SAE needs at least one input dimension and one latent.")
        if not 1 <= self.k <= self.d_sae:
            raise InputError(f"k (active latents per token) must be between 1 and the width {self.d_sae}; it is {self.k}.")
        if not (self.learning_rate >= 0 and math.isfinite(self.learning_rate)):
            raise InputError(f"The learning rate must be a positive number (0 for the automatic one), not {self.learning_rate}.")
        if self.dead_after_tokens < 1:
            raise InputError("dead_after_tokens must be at least 1.")

    @property
    def lr(self) -> float:
        return self.learning_rate or 2e-4 / math.sqrt(self.d_sae / 2**14)


@dataclasses.dataclass(frozen=True)
class StepStats:
    """One step's figures, over the batch."""

    fvu: float  # fraction of variance unexplained (0 perfect, 1 as good as the batch mean)
    aux_loss: float  # AuxK's normalised error (0 when no latent is dead)
    dead_fraction: float  # latents not fired for dead_after_tokens
    tokens: int  # tokens seen so far, this step included


def _auxk_loss(coder, x: torch.Tensor, error: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """Gao et al.'s AuxK: the top ``d_in / 2`` dead latents reconstruct the live latents' error, normalised like FVU.

    Computed here rather than by ``SparseCoder.forward(dead_mask=...)``: sparsify 1.3.3's fused encoder drops the
    gradient of its pre-activations in backward, so its AuxK loss trains the dead latents' decoder rows but never
    their encoder rows, and a dead latent stays dead (measured: no change of the dead fraction; the test
    ``test_auxk_trains_the_dead_latents_and_only_it_does`` fails with sparsify's). The pre-activations are
    recomputed with a plain linear layer so autograd reaches the encoder.
    """
    n_dead = int(dead.sum())
    if n_dead == 0:
        return x.new_zeros(())
    k_aux = min(x.shape[-1] // 2, n_dead)
    scale = min(n_dead / (x.shape[-1] // 2), 1.0)  # as the paper and sparsify: less weight when few are dead
    pre = torch.relu(torch.nn.functional.linear(x - coder.b_dec, coder.encoder.weight[dead], coder.encoder.bias[dead]))
    acts, indices = pre.topk(k_aux, dim=-1, sorted=False)
    estimate = torch.einsum("tk,tkd->td", acts, coder.W_dec[dead][indices])
    total_variance = (x - x.mean(0)).pow(2).sum()
    return scale * (estimate - error.detach()).pow(2).sum() / total_variance


class TopKTrainer:
    """A sparsify ``SparseCoder`` in training, with its optimiser and dead-latent counters."""

    def __init__(self, settings: TopKSettings, state: dict[str, torch.Tensor] | None = None) -> None:
        sparsify = _sparsify()
        self.settings = settings
        config = sparsify.SparseCoderConfig(activation="topk", num_latents=settings.d_sae, k=settings.k)
        with torch.random.fork_rng(devices=[]):  # its nn.Linear init draws from the global generator
            torch.manual_seed(settings.seed)
            self.coder = sparsify.SparseCoder(settings.d_in, config, device="cpu", dtype=torch.float32)
        self.coder.set_decoder_norm_to_unit_norm()
        with torch.no_grad():  # the paper's encoder = decoderᵀ at unit norm (sparsify keeps nn.Linear's smaller scale)
            self.coder.encoder.weight.copy_(self.coder.W_dec)
        self.since_fired = torch.zeros(settings.d_sae, dtype=torch.long)
        self.tokens = 0
        self.optimizer = torch.optim.Adam(self.coder.parameters(), lr=settings.lr)
        if state is not None:
            self.load_state_tensors(state)

    def step(self, x: torch.Tensor) -> StepStats:
        """One Adam step on a batch of activations ``[tokens, d_in]``."""
        x = x.float()
        coder = self.coder
        if self.tokens == 0:
            with torch.no_grad():
                coder.b_dec.copy_(x.mean(dim=0))
        coder.set_decoder_norm_to_unit_norm()
        dead = self.since_fired >= self.settings.dead_after_tokens
        out = coder(x)
        aux_loss = _auxk_loss(coder, x, x - out.sae_out, dead)
        loss = out.fvu + AUX_COEFFICIENT * aux_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        self.optimizer.step()
        with torch.no_grad():
            fired = torch.zeros(self.settings.d_sae, dtype=torch.bool)
            fired[out.latent_indices[out.latent_acts > 0].unique()] = True
            self.since_fired += x.shape[0]
            self.since_fired[fired] = 0
        self.tokens += x.shape[0]
        return StepStats(float(out.fvu.detach()), float(aux_loss.detach()), float(dead.float().mean()), self.tokens)

    def to_sae(self, hook_name: str) -> SparseAutoencoder:
        coder = self.coder
        with torch.no_grad():
            coder.set_decoder_norm_to_unit_norm()  # as sparsify saves it: the directions the last step left, unit norm
            return SparseAutoencoder(
                encoder_weight=coder.encoder.weight.detach().clone(),
                encoder_bias=coder.encoder.bias.detach().clone(),
                decoder_weight=coder.W_dec.detach().clone(),
                decoder_bias=coder.b_dec.detach().clone(),
                hook_name=hook_name,
                activation="topk",
                k=self.settings.k,
                source="steerscope",
            )

    # -- checkpoints: plain tensors, so a stopped training resumes exactly -------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"coder.{name}": p.detach().clone() for name, p in self.coder.named_parameters()}
        for name, parameter in self.coder.named_parameters():
            for key, value in self.optimizer.state.get(parameter, {}).items():
                tensors[f"adam.{name}.{key}"] = torch.as_tensor(value).detach().clone()
        tensors["since_fired"] = self.since_fired.clone()
        tensors["tokens"] = torch.tensor([self.tokens], dtype=torch.long)
        return tensors

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, parameter in self.coder.named_parameters():
                saved = state.get(f"coder.{name}")
                if saved is None or saved.shape != parameter.shape:
                    raise InputError(f"The training checkpoint's {name} is missing or has the wrong shape; start afresh.")
                parameter.copy_(saved)
        for name, parameter in self.coder.named_parameters():
            moments = {
                key: state[f"adam.{name}.{key}"].clone()
                for key in ("step", "exp_avg", "exp_avg_sq")
                if f"adam.{name}.{key}" in state
            }
            if len(moments) == 3:
                self.optimizer.state[parameter] = moments
        self.since_fired = state["since_fired"].clone().long()
        self.tokens = int(state["tokens"][0])
