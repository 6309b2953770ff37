"""Steering: make a direction from contrasting text, add it while the model writes, and measure what it does.

* :mod:`~steering.vector` — :class:`SteeringVector`, a small value with arithmetic and files (safetensors, GGUF, npy).
* :mod:`~steering.make` — vectors from prompt pairs (ActAdd), mean differences (CAA) or a principal component.
* :mod:`~steering.apply` — :func:`steer`: the vector added inside one hook context, removed afterwards.
* :mod:`~steering.scores` — behaviour scorers independent of the steered model, and the damage (perplexity, repetition).
* :mod:`~steering.sweep` — an evaluation of one setting, a layer x coefficient sweep, and its recommendation.
* :mod:`~steering.meaning` — what a direction promotes through the unembedding, and where a text lights up along it.
* :mod:`~steering.runs` — the steering run kinds as specs (kept, replayed, served).
* :mod:`~steering.rlhf` — a reward model, best-of-N and DPO beside steering.
* :mod:`~steering.plots` — the page's figures (imported on its own: it needs plotly).

Example:
    >>> from steering import SteeringSweep, built_in, mean_difference
    >>> vector = mean_difference(model, built_in("sentiment"), layers=[4, 5], position="mean")
    >>> result = SteeringSweep(vector, layers=(4, 5), coefficients=(2.0, 3.0)).run(model)
    >>> result.recommended()
"""

from steering.apply import POSITION_MODES, steer, steering_hooks
from steering.datasets import BUILT_IN, ContrastPairs, built_in, read_pairs
from steering.make import POSITIONS, actadd, mean_difference, pca_direction, text_activations
from steering.meaning import Projection, TokenEffect, layer_cosines, token_effects, token_projections
from steering.rlhf import (
    BestOfN,
    BestOfNRun,
    ComparisonResult,
    ComparisonRow,
    ComparisonRun,
    DPOLogEntry,
    DPOResult,
    DPORun,
    InsideView,
    PreferencePair,
    RewardModel,
    RewardTraining,
    RewardTrainingRun,
    SteeringChoice,
    best_of_n,
    builtin_preferences,
    compare,
    inside_view,
    kl_bound,
    load_tuned,
    read_preferences,
    recommend_steering,
    reward_attribution,
    reward_scorer,
    split_by_prompt,
    train_dpo,
    train_reward_model,
)
from steering.runs import SCORER_NAMES, SteeringBatchEvaluation, SteeringEvaluation, SteeringSweep, behaviour_scorer
from steering.scores import (
    SCORERS,
    SENTIMENT,
    WEDDINGS,
    Scorer,
    continuation_preference,
    distinct_n,
    perplexity,
    sentiment,
    topic_rate,
)
from steering.sweep import NEUTRAL_PROMPTS, Evaluation, SweepCell, SweepResult, TextScores, evaluate, score_texts, sweep
from steering.vector import HOOK_POINTS, SteeringVector, load_vector

__all__ = [
    "BUILT_IN",
    "HOOK_POINTS",
    "NEUTRAL_PROMPTS",
    "POSITIONS",
    "POSITION_MODES",
    "SCORERS",
    "SCORER_NAMES",
    "SENTIMENT",
    "WEDDINGS",
    "BestOfN",
    "BestOfNRun",
    "ComparisonResult",
    "ComparisonRow",
    "ComparisonRun",
    "ContrastPairs",
    "DPOLogEntry",
    "DPOResult",
    "DPORun",
    "Evaluation",
    "InsideView",
    "PreferencePair",
    "Projection",
    "RewardModel",
    "RewardTraining",
    "RewardTrainingRun",
    "Scorer",
    "SteeringBatchEvaluation",
    "SteeringChoice",
    "SteeringEvaluation",
    "SteeringSweep",
    "SteeringVector",
    "SweepCell",
    "SweepResult",
    "TextScores",
    "TokenEffect",
    "actadd",
    "behaviour_scorer",
    "best_of_n",
    "built_in",
    "builtin_preferences",
    "compare",
    "continuation_preference",
    "distinct_n",
    "evaluate",
    "inside_view",
    "kl_bound",
    "layer_cosines",
    "load_tuned",
    "load_vector",
    "mean_difference",
    "pca_direction",
    "perplexity",
    "read_pairs",
    "read_preferences",
    "recommend_steering",
    "reward_attribution",
    "reward_scorer",
    "score_texts",
    "sentiment",
    "split_by_prompt",
    "steer",
    "steering_hooks",
    "sweep",
    "text_activations",
    "token_effects",
    "token_projections",
    "topic_rate",
    "train_dpo",
    "train_reward_model",
]
