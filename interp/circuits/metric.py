"""What a circuit experiment measures: a number per run, computed from the logits.

A logit difference (right minus wrong answer) is the usual choice (Wang et al. 2022): it is linear in the
final residual stream, so direct logit attribution can split it, and it ignores the probability mass the
two answers share. A log-probability also counts what the rest of the vocabulary takes; the induction task's
loss on the repeated half averages many positions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch


@dataclasses.dataclass(frozen=True)
class Metric:
    """A number per run, computed from logits ``[rows, pos, vocab]`` of a batch of ``batch`` prompts.

    Build with :meth:`logit_diff`, :meth:`log_prob` or :meth:`repeated_loss`. ``answers`` and
    ``wrongs`` hold one token id per prompt in the batch; rows of a sweep are sites x prompts.
    """

    kind: str  # "logit_diff" | "log_prob" | "repeated_loss"
    answers: tuple[int, ...] = ()
    wrongs: tuple[int, ...] = ()
    targets: tuple[tuple[int, ...], ...] = ()  # repeated_loss: the clean tokens, per prompt
    positions: tuple[int, ...] = ()  # repeated_loss: positions whose next token is scored
    label: str = ""

    @classmethod
    def logit_diff(cls, answers: Sequence[int], wrongs: Sequence[int], label: str = "logit difference") -> Metric:
        return cls("logit_diff", tuple(answers), tuple(wrongs), label=label)

    @classmethod
    def log_prob(cls, answers: Sequence[int], label: str = "log-probability of the answer") -> Metric:
        return cls("log_prob", tuple(answers), label=label)

    @classmethod
    def repeated_loss(
        cls, targets: torch.Tensor, positions: Sequence[int], label: str = "loss on the repeated tokens (nats)"
    ) -> Metric:
        return cls(
            "repeated_loss", targets=tuple(tuple(row) for row in targets.tolist()), positions=tuple(positions), label=label
        )

    @property
    def batch(self) -> int:
        return len(self.targets) if self.kind == "repeated_loss" else len(self.answers)

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "repeated_loss"

    @property
    def unit(self) -> str:
        """Log-probabilities and losses are in nats; a logit difference is in logits (a log-odds, nats too)."""
        return "logits" if self.kind == "logit_diff" else "nats"

    def logits_to_keep(self) -> int:
        """How many trailing positions' logits the metric reads (the unembedding is skipped elsewhere)."""
        if self.kind == "repeated_loss":
            return len(self.targets[0]) - min(self.positions)
        return 1

    def per_row(self, logits: torch.Tensor) -> torch.Tensor:
        """The metric for every row; row ``r`` belongs to prompt ``r % batch``.

        ``logits`` may hold only the last :meth:`logits_to_keep` positions.
        """
        rows = logits.shape[0]
        prompt = torch.arange(rows, device=logits.device) % self.batch
        if self.kind == "repeated_loss":
            positions = torch.tensor(self.positions, device=logits.device)
            targets = torch.tensor(self.targets, device=logits.device)[prompt][:, positions + 1]
            first_kept = len(self.targets[0]) - logits.shape[1]
            log_probs = torch.log_softmax(logits[:, positions - first_kept].float(), dim=-1)
            return -log_probs.gather(-1, targets[..., None])[..., 0].mean(dim=-1)
        final = logits[:, -1].float()
        answers = torch.tensor(self.answers, device=logits.device)[prompt]
        if self.kind == "logit_diff":
            wrongs = torch.tensor(self.wrongs, device=logits.device)[prompt]
            return final.gather(-1, answers[:, None])[:, 0] - final.gather(-1, wrongs[:, None])[:, 0]
        return torch.log_softmax(final, dim=-1).gather(-1, answers[:, None])[:, 0]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """The metric averaged over the prompts of each site: ``[rows // batch]``."""
        return self.per_row(logits).view(-1, self.batch).mean(dim=-1)
