"""Long steering and RLHF runs say how far they are: fractions that only grow and end at 1.0."""

from __future__ import annotations

import numpy as np
import pytest

from steering.rlhf import BestOfNRun, RewardTrainingRun, builtin_preferences
from steering.runs import PROMPTS_PER_STEP, SteeringBatchEvaluation, SteeringEvaluation, batch_summary
from steering.scores import SCORERS
from steering.sweep import evaluate
from tests.steering.test_vector import make


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, message: str) -> None:
        self.calls.append((fraction, message))

    def check(self) -> list[str]:
        fractions = [f for f, _ in self.calls]
        assert len(fractions) >= 3, self.calls
        assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] == 1.0, self.calls
        assert all(message for _, message in self.calls)
        return [message for _, message in self.calls]


@pytest.fixture(scope="module")
def reward(tiny_llama):
    from steering.rlhf import split_by_prompt, train_reward_model

    train, test = split_by_prompt(builtin_preferences())
    return train_reward_model(tiny_llama, train, test, layers=[1], steps=20, seed=0).reward_model


def test_a_live_steering_evaluation_reports_its_unsteered_and_steered_samples(tiny_llama):
    vector = make(tiny_llama, layers=(1,))
    spec = SteeringEvaluation(vector, 1, 2.0, prompts=("I love",), n_samples=3, max_new_tokens=4, seed=3)
    progress = Recorder()
    result = spec.run(tiny_llama, progress)
    messages = progress.check()
    assert messages[0] == "Unsteered, prompt 1 of 1: 3 samples" and messages[1] == "Steered, prompt 1 of 1: 3 samples"
    # Steps of up to PROMPTS_PER_STEP prompts give exactly what one call of evaluate() gives.
    plain = evaluate(tiny_llama, vector, 1, 2.0, SCORERS["sentiment"], prompts=("I love",), n_samples=3, max_new_tokens=4, seed=3)
    assert result.steered.texts == plain.steered.texts and result.unsteered.texts == plain.unsteered.texts
    assert np.array_equal(result.steered.perplexity, plain.steered.perplexity)


def test_a_batch_evaluation_reports_each_step_of_prompts_and_keeps_their_seeds(tiny_llama):
    vector = make(tiny_llama, layers=(1,))
    prompts = tuple(f"Prompt number {i} is" for i in range(PROMPTS_PER_STEP + 2))
    progress = Recorder()
    batch = SteeringBatchEvaluation(vector, 1, 2.0, prompts, max_new_tokens=3, seed=5).run(tiny_llama, progress)
    messages = progress.check()
    assert f"Unsteered, prompts 1–{PROMPTS_PER_STEP} of {len(prompts)}: {PROMPTS_PER_STEP} samples" in messages
    assert f"Steered, prompts {PROMPTS_PER_STEP + 1}–{len(prompts)} of {len(prompts)}: 2 samples" in messages
    assert len(batch.steered.texts) == len(prompts) and batch.to_frame()["prompt"].tolist() == list(prompts)
    # The last step's prompts are sampled with the seeds they had in one batch (seed + prompt index).
    alone = evaluate(tiny_llama, vector, 1, 2.0, SCORERS["sentiment"], prompts=prompts[-2:], n_samples=1,
                     max_new_tokens=3, seed=5 + PROMPTS_PER_STEP)  # fmt: skip
    assert batch.steered.texts[-2:] == alone.steered.texts
    summary = batch_summary(batch, "VADER compound")
    assert summary.startswith(f"{len(prompts)} prompts in ") and " s: mean behaviour gain " in summary
    assert f"{batch.behaviour_gain:+.3f} VADER compound" in summary and f"×{batch.perplexity_ratio:.2f}" in summary


def test_best_of_n_reports_every_prompt_of_every_seed_group(tiny_llama, reward):
    progress = Recorder()
    BestOfNRun(reward, ("Hi", "How are you?"), ns=(1, 2), groups=2, max_new_tokens=3).run(tiny_llama, progress)
    messages = progress.check()
    assert "Sampling 2 replies to prompt 2 of 2, seed group 2 of 2" in messages
    assert len(progress.calls) == 2 * 2 * 2 + 1


def test_reward_training_advances_through_reading_choosing_and_training(tiny_llama):
    progress = Recorder()
    RewardTrainingRun(tuple(builtin_preferences()), layers=(0, 1), steps=40).run(tiny_llama, progress)
    messages = progress.check()
    assert any(m.startswith("Chosen replies: ") and "replies read" in m for m in messages)
    assert any(m.startswith("Choosing the layer: layer 1 (2 of 2): step 40/40, Bradley–Terry loss ") for m in messages)
    training = [m for m in messages if m.startswith("Training the head on layer ")]
    assert len(training) >= 2 and "step 40/40" in training[-1]
    assert len({round(f, 3) for f, _ in progress.calls}) >= 10  # the bar moves, it does not sit on one message
