"""Small examples of the reward-model and RLHF run kinds, for the tiny fixtures."""

from __future__ import annotations

from interp import LoadedModel
from interp.runs import RunSpec
from steering.rlhf import (
    BestOfNRun,
    ComparisonRun,
    DPORun,
    RewardModel,
    RewardTrainingRun,
    builtin_preferences,
    train_reward_model,
)

_rewards: dict[str, RewardModel] = {}  # by weights: the examples are gathered once per test


def _reward(model: LoadedModel) -> RewardModel:
    if model.info.weights_sha256 not in _rewards:
        pairs = builtin_preferences()[:20]
        _rewards[model.info.weights_sha256] = train_reward_model(model, pairs, layers=(1,), steps=20).reward_model
    return _rewards[model.info.weights_sha256]


def examples(model: LoadedModel) -> list[RunSpec]:
    pairs = tuple(builtin_preferences()[:20])
    reward = _reward(model)
    return [
        RewardTrainingRun(pairs, data_name="built-in", layers=(1,), steps=20),
        BestOfNRun(reward, ("Can you help me?",), ns=(1, 2), groups=1, max_new_tokens=4),
        DPORun(pairs[:8], max_steps=2, batch_size=2, lora_rank=4),
        ComparisonRun(
            reward,
            pairs,
            ("Can you help me?",),
            steering_layers=(1,),
            coefficients=(1.0,),
            best_of=2,
            n_samples=1,
            max_new_tokens=4,
        ),
    ]
