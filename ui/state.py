"""State one page makes and another reads, behind typed helpers (never another page's raw session keys).

Today: the reward model trained on the Reward & RLHF page, which the Steering page offers as a scorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def keep_input(key: str, default: Any, *, allowed: Sequence[Any] | None = None) -> Any:
    """Re-commit widget ``key``'s value (or ``default``) before the widget is drawn, and return it.

    Streamlit forgets a widget's value after any run that does not draw it (no model loaded yet while the sidebar
    switches models, no vector chosen yet), and a widget whose state it forgot is shown at its own default (a
    slider's minimum) while the page may go on using another value. Writing the value back on every run, before
    the page can stop, keeps it and makes the widget show exactly what is used. ``allowed``: the values the widget
    offers now; a kept value outside them (a layer of another vector or model) falls back to ``default``.
    """
    value = st.session_state.get(key, default)
    if allowed is not None and value not in allowed:
        value = default
    st.session_state[key] = value
    return value
