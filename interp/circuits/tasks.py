"""The tasks a circuit is found on: ready-made clean/corrupted prompt pairs with their metric, and custom pairs.

A run names its task by a :class:`CircuitTask` (a preset's name, or a custom pair, and the metric), which
:meth:`CircuitTask.build` turns into the token batches of a :class:`PatchingTask`.

* **Induction** — random tokens ``R R`` (clean) against ``R' R`` (corrupted: a different first
  half, so the second half has nothing to copy). Metric: loss on the second half's tokens.
* **Indirect object identification** (Wang et al. 2022) — "When Mary and John went to the store,
  John gave a drink to" → " Mary". Corrupted: the repeated name swapped, so the answer flips.
  Metric: logit(right name) - logit(other name).
* **Factual recall** — "The Eiffel Tower is in the city of" → " Paris", corrupted with another
  landmark of the same token length. Metric: logit(Paris) - logit(the other city).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from interp.circuits.metric import Metric
from interp.errors import InputError
from interp.loading import LoadedModel
from interp.tokens import baseline_token_id, pad_rows, single_token_id, token_labels, tokenize

PRESETS = ("induction", "ioi", "factual")
TaskName = Literal["induction", "ioi", "factual", "custom"]
MetricKind = Literal["logit_diff", "log_prob", "repeated_loss"]
PRESET_TITLES = {
    "induction": "Induction (repeated random tokens)",
    "ioi": "Indirect object identification",
    "factual": "Factual recall",
}

# {a} is the indirect object (the answer); {b} is the subject, repeated. Corrupting swaps the
# repeated name, which makes {b} the answer instead.
IOI_TEMPLATES = [
    "When {a} and {b} went to the store, {b} gave a drink to",
    "After {a} and {b} had lunch at the cafe, {b} handed a menu to",
    "Then {a} and {b} went to the park. {b} gave a ball to",
    "While {a} and {b} were at the office, {b} sent an email to",
]
IOI_NAMES = [("Mary", "John"), ("Alice", "Bob"), ("Sarah", "Tom"), ("Emma", "James")]
FACTS = [
    ("The Eiffel Tower is in the city of", " Paris"),
    ("The Colosseum is in the city of", " Rome"),
    ("Big Ben is in the city of", " London"),
    ("The Brandenburg Gate is in the city of", " Berlin"),
    ("The Statue of Liberty is in the city of", " New"),
    ("The Kremlin is in the city of", " Moscow"),
]


@dataclasses.dataclass(frozen=True)
class PatchingTask:
    """A clean and a corrupted batch of prompts of equal shape, and the metric that tells them apart."""

    name: str
    clean: torch.Tensor  # [batch, pos]
    corrupted: torch.Tensor
    metric: Metric
    clean_text: tuple[str, ...]
    corrupted_text: tuple[str, ...]
    position_labels: tuple[str, ...]  # tokens of the first clean prompt, for plot axes


def induction_task(model: LoadedModel, *, n_prompts: int = 4, half: int = 12, seed: int = 0) -> PatchingTask:
    from interp.attention import probe_tokens

    clean = probe_tokens(model, n_sequences=n_prompts, repeat_length=half, seed=seed)
    corrupted = clean.clone()
    corrupted[:, :half] = probe_tokens(model, n_sequences=n_prompts, repeat_length=half, seed=seed + 1)[:, :half]
    metric = Metric.repeated_loss(clean, positions=list(range(half, 2 * half - 1)))
    labels = tuple(token_labels(model, clean[0].tolist()))
    decode = model.tokenizer.decode
    return PatchingTask("induction", clean, corrupted, metric, tuple(decode(r) for r in clean.tolist()),
                        tuple(decode(r) for r in corrupted.tolist()), labels)  # fmt: skip


def ioi_task(model: LoadedModel, n_prompts: int = 4) -> PatchingTask:
    """IOI prompts from several templates and name pairs, all of one token length (a batch must line up)."""
    by_length: dict[int, list[tuple]] = {}
    for template in IOI_TEMPLATES:
        for a, b in IOI_NAMES:
            clean_text = template.format(a=a, b=b)
            head, tail = clean_text.rsplit(b, 1)
            corrupt_text = head + a + tail
            clean_ids, corrupt_ids = tokenize(model, clean_text), tokenize(model, corrupt_text)
            names = (
                model.tokenizer(" " + a, add_special_tokens=False).input_ids,
                model.tokenizer(" " + b, add_special_tokens=False).input_ids,
            )
            if len(clean_ids) != len(corrupt_ids) or len(names[0]) != 1 or len(names[1]) != 1:
                continue  # a name split into several tokens, or the swap changed the length
            by_length.setdefault(len(clean_ids), []).append(
                (clean_ids, corrupt_ids, names[0][0], names[1][0], clean_text, corrupt_text)
            )
    if not by_length:
        raise InputError(
            "None of the IOI prompts works for this tokenizer (names split into several tokens); write a custom pair."
        )
    # Mix templates and names: take the largest same-length group, one name pair per template first.
    group = max(by_length.values(), key=len)
    chosen = group[:: max(1, len(group) // n_prompts)][:n_prompts]
    clean_rows, corrupt_rows, answers, wrongs, texts, corrupt_texts = (list(column) for column in zip(*chosen, strict=True))
    metric = Metric.logit_diff(answers, wrongs, "logit(right name) - logit(other name)")
    return _stack_task(model, "ioi", clean_rows, corrupt_rows, metric, texts, corrupt_texts)


def factual_task(model: LoadedModel) -> PatchingTask:
    """The Eiffel Tower fact, corrupted with the first other landmark of the same token length."""
    clean_text, answer = FACTS[0]
    clean_ids = tokenize(model, clean_text)
    for other_text, other_answer in FACTS[1:]:
        other_ids = tokenize(model, other_text)
        if len(other_ids) == len(clean_ids):
            metric = Metric.logit_diff([single_token_id(model, answer)], [single_token_id(model, other_answer)],
                                       f"logit({answer.strip()}) - logit({other_answer.strip()})")  # fmt: skip
            return _stack_task(model, "factual", [clean_ids], [other_ids], metric, [clean_text], [other_text])
    raise InputError(f"No corrupted landmark has as many tokens as {clean_text!r} for this model; write a custom pair.")


def custom_task(model: LoadedModel, clean_text: str, corrupted_text: str, answer: str, wrong: str) -> PatchingTask:
    """A user's own pair. Both prompts must have the same number of tokens (see :func:`align`)."""
    clean_ids, corrupt_ids = tokenize(model, clean_text), tokenize(model, corrupted_text)
    if len(clean_ids) != len(corrupt_ids):
        raise InputError(
            f"The clean prompt is {len(clean_ids)} tokens and the corrupted one {len(corrupt_ids)}; patching needs them "
            "to line up token by token. Change a word for one of the same token length, or align them (pads the "
            "shorter one at the start)."
        )
    metric = Metric.logit_diff(
        [single_token_id(model, answer)], [single_token_id(model, wrong)], f"logit({answer!r}) - logit({wrong!r})"
    )
    return _stack_task(model, "custom", [clean_ids], [corrupt_ids], metric, [clean_text], [corrupted_text])


def align(model: LoadedModel, clean_text: str, corrupted_text: str) -> tuple[list[int], list[int]]:
    """Pad the shorter prompt's token ids at the start with the pad token, so the two line up at the end."""
    padded = pad_rows([tokenize(model, clean_text), tokenize(model, corrupted_text)], baseline_token_id(model), side="left")
    clean_ids, corrupt_ids = padded.tokens.tolist()
    return clean_ids, corrupt_ids


def aligned_task(model: LoadedModel, clean_text: str, corrupted_text: str, answer: str, wrong: str) -> PatchingTask:
    clean_ids, corrupt_ids = align(model, clean_text, corrupted_text)
    metric = Metric.logit_diff(
        [single_token_id(model, answer)], [single_token_id(model, wrong)], f"logit({answer!r}) - logit({wrong!r})"
    )
    return _stack_task(model, "custom (aligned)", [clean_ids], [corrupt_ids], metric, [clean_text], [corrupted_text])


METRIC_TITLES = {
    "logit_diff": "Logit difference, right − wrong answer (logits)",
    "log_prob": "Log-probability of the right answer (nats)",
    "repeated_loss": "Loss on the repeated tokens (nats)",
}


def metric_choices(task: PatchingTask) -> list[str]:
    """The metrics a task can be measured with: its own first (answers give two; induction has one)."""
    return ["repeated_loss"] if task.metric.kind == "repeated_loss" else ["logit_diff", "log_prob"]


def with_metric(task: PatchingTask, kind: str) -> PatchingTask:
    """The same prompts measured by another metric from :func:`metric_choices`."""
    if kind == task.metric.kind:
        return task
    if kind == "log_prob" and task.metric.kind == "logit_diff":
        return dataclasses.replace(
            task, metric=Metric.log_prob(task.metric.answers, "log-probability of the right answer (nats)")
        )
    raise InputError(f"The {task.name} task cannot be measured by {METRIC_TITLES.get(kind, kind)!r}; choose from "
                     f"{', '.join(METRIC_TITLES[k] for k in metric_choices(task))}.")  # fmt: skip


def reference_batch(task: PatchingTask) -> torch.Tensor:
    """Prompts whose mean activation a mean-ablation writes: the task's clean and corrupted prompts together.

    A one-prompt task (factual recall, a custom pair) would otherwise "ablate" with its own activation.
    """
    return torch.cat([task.clean, task.corrupted])


def preset_task(model: LoadedModel, name: str) -> PatchingTask:
    if name == "induction":
        return induction_task(model)
    if name == "ioi":
        return ioi_task(model)
    if name == "factual":
        return factual_task(model)
    raise InputError(f"Unknown preset {name!r}; choose from {', '.join(PRESETS)}.")


def _stack_task(model, name, clean_rows, corrupt_rows, metric, texts, corrupt_texts) -> PatchingTask:
    if not clean_rows:
        raise InputError(f"None of the {name} prompts tokenise to equal lengths for this model; write a custom pair.")
    clean, corrupted = torch.tensor(clean_rows), torch.tensor(corrupt_rows)
    return PatchingTask(
        name, clean, corrupted, metric, tuple(texts), tuple(corrupt_texts), tuple(token_labels(model, clean_rows[0]))
    )


# ---------------------------------------------------------------------------------------------
# The task a run names (what its spec holds)

CUSTOM_CLEAN = "When Mary and John went to the store, John gave a drink to"
CUSTOM_CORRUPTED = "When Mary and John went to the store, Mary gave a drink to"
CUSTOM_ANSWER, CUSTOM_WRONG = " Mary", " John"


@dataclasses.dataclass(frozen=True)
class CircuitTask:
    """Which prompts a circuit run uses and how it measures them: a preset by name, or a custom pair.

    ``metric`` None measures with the task's own metric (the first of :func:`metric_choices`). ``align``
    pads the shorter custom prompt at the start (:func:`align`) instead of refusing a pair that does not
    line up. The prompt fields are read only for ``name="custom"``.
    """

    name: TaskName = "induction"
    clean: str = CUSTOM_CLEAN
    corrupted: str = CUSTOM_CORRUPTED
    answer: str = CUSTOM_ANSWER
    wrong: str = CUSTOM_WRONG
    align: bool = False
    metric: MetricKind | None = None

    def __post_init__(self) -> None:
        if self.name not in (*PRESETS, "custom"):
            raise InputError(f"Unknown task {self.name!r}; choose from {', '.join((*PRESETS, 'custom'))}.")
        if self.metric is not None and self.metric not in METRIC_TITLES:
            raise InputError(f"Unknown metric {self.metric!r}; choose from {', '.join(METRIC_TITLES)}.")
        if self.name == "custom" and not (self.clean.strip() and self.corrupted.strip()):
            raise InputError("Write both a clean and a corrupted prompt.")

    @classmethod
    def custom(cls, clean: str, corrupted: str, answer: str, wrong: str, **options) -> CircuitTask:
        return cls("custom", clean, corrupted, answer, wrong, **options)

    @property
    def metric_kind(self) -> str:
        """The metric this task is measured by, once the task's own default is filled in."""
        if self.metric is not None:
            return self.metric
        return "repeated_loss" if self.name == "induction" else "logit_diff"

    def build(self, model: LoadedModel) -> PatchingTask:
        """The token batches and metric for ``model``'s tokenizer."""
        if self.name != "custom":
            task = preset_task(model, self.name)
        elif self.align:
            task = aligned_task(model, self.clean, self.corrupted, self.answer, self.wrong)
        else:
            task = custom_task(model, self.clean, self.corrupted, self.answer, self.wrong)
        return with_metric(task, self.metric_kind)

    def describe(self) -> str:
        own = PRESET_TITLES.get(self.name) or f"{self.clean!r} vs {self.corrupted!r}"
        return f"{own}, measured by {METRIC_TITLES[self.metric_kind]}"
