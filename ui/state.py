"""State one page makes and another reads, behind typed helpers (never another page's raw session keys).

Today: the reward model trained on the Reward & RLHF page, which the Steering page offers as a scorer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from interp import LoadedModel

if TYPE_CHECKING:
    from steering.rlhf import RewardModel

KEY_REWARD_MODEL = "shared_reward_model"


def set_trained_reward_model(reward: RewardModel | None) -> None:
    """Offer ``reward`` to other pages of this session (None withdraws it)."""
    st.session_state[KEY_REWARD_MODEL] = reward


def trained_reward_model(model: LoadedModel) -> RewardModel | None:
    """The reward model trained in this session for ``model``'s weights, if any (one for other weights is not offered)."""
    reward = st.session_state.get(KEY_REWARD_MODEL)
    if reward is None or reward.base_weights_sha256 != model.info.weights_sha256:
        return None
    return reward
