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


def seed_input(key: str, default: Any, *, allowed: Sequence[Any] | None = None) -> Any:
    """Start widget ``key`` at ``default`` the first time (or when its value is no longer offered); return its value.

    Call it right before drawing the widget, which is drawn with ``persist_state="session"``: Streamlit then keeps
    the value through runs that do not draw it (no model loaded yet while the sidebar switches models, no vector
    chosen yet) and shows it when the widget comes back; before that option, a widget drawn anew showed its own
    default (a slider's minimum) while the page used another value. Only a missing or refused value is written:
    writing a widget's key sends the value to the browser, which would snap a slider the user is still moving back
    to the value of the run that the move interrupted. ``allowed``: the values the widget offers now; a value outside
    them (a layer of another vector or model) is replaced by ``default``.
    """
    if key not in st.session_state or (allowed is not None and st.session_state[key] not in allowed):
        st.session_state[key] = default
    return st.session_state[key]
