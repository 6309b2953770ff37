"""RLHF beside steering: a reward model trained here, best-of-N, DPO fine-tuning, and how they compare.

* :mod:`~steering.rlhf.preferences` — preference pairs: built-in, uploaded, split by prompt.
* :mod:`~steering.rlhf.reward_model` — a Bradley–Terry head on the model's own residual stream.
* :mod:`~steering.rlhf.best_of_n` — keep the best of N samples; its KL bound.
* :mod:`~steering.rlhf.dpo` — DPO with a LoRA adapter on a private copy of the model.
* :mod:`~steering.rlhf.comparison` — every method on one reward and cost scale, with the steering vector's setting.
* :mod:`~steering.rlhf.inside` — what DPO changed inside, compared with the steering direction.
* :mod:`~steering.rlhf.plots` — the page's figures (imported on its own: it needs plotly and pandas).
"""

from steering.rlhf.best_of_n import BestOfN, BestOfNRun, best_of_n, kl_bound
from steering.rlhf.comparison import (
    ComparisonResult,
    ComparisonRow,
    ComparisonRun,
    SteeringChoice,
    chosen_minus_rejected,
    compare,
    default_steering_layers,
    recommend_steering,
)
from steering.rlhf.dpo import DPOLogEntry, DPOResult, DPORun, load_tuned, partial_dpo, temporary_run_folder, train_dpo
from steering.rlhf.inside import InsideView, inside_view
from steering.rlhf.preferences import PreferencePair, builtin_preferences, read_preferences, split_by_prompt
from steering.rlhf.reward_model import (
    RewardModel,
    RewardTraining,
    RewardTrainingRun,
    response_features,
    reward_attribution,
    reward_scorer,
    train_reward_model,
)

__all__ = [
    "BestOfN",
    "BestOfNRun",
    "ComparisonResult",
    "ComparisonRow",
    "ComparisonRun",
    "DPOLogEntry",
    "DPOResult",
    "DPORun",
    "InsideView",
    "PreferencePair",
    "RewardModel",
    "RewardTraining",
    "RewardTrainingRun",
    "SteeringChoice",
    "best_of_n",
    "builtin_preferences",
    "chosen_minus_rejected",
    "compare",
    "default_steering_layers",
    "inside_view",
    "kl_bound",
    "load_tuned",
    "partial_dpo",
    "read_preferences",
    "recommend_steering",
    "response_features",
    "reward_attribution",
    "reward_scorer",
    "split_by_prompt",
    "temporary_run_folder",
    "train_dpo",
    "train_reward_model",
]
