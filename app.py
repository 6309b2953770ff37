"""Steerscope: the app's entry point. `make app` runs `streamlit run app.py` on 127.0.0.1:8501.

Started any other way, ui/serving.py still applies the safe settings, and refuses to serve other
machines unless STEERSCOPE_ALLOW_REMOTE=1 (docs/SECURITY.md).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.engine_status import engine_sidebar
from ui.model import KEY_MODEL, model_sidebar
from ui.serving import guard

ROOT = Path(__file__).resolve().parent
st.set_page_config(page_title="Steerscope", page_icon=str(ROOT / "ui" / "assets" / "favicon.png"), layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/attention.py", title="Attention", icon=":material/visibility:"),
    st.Page("pages/attribution.py", title="Attribution", icon=":material/highlight:"),
    st.Page("pages/circuits.py", title="Circuits", icon=":material/account_tree:"),
    st.Page("pages/steering.py", title="Steering", icon=":material/tune:"),
    st.Page("pages/features.py", title="Features", icon=":material/category:"),
    st.Page("pages/compression.py", title="Compression", icon=":material/compress:"),
    st.Page("pages/rlhf.py", title="Reward & RLHF", icon=":material/school:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/history:"),
    st.Page("pages/serving.py", title="Serving", icon=":material/dns:"),
]

if guard():  # before anything else is drawn or loaded
    navigation = st.navigation(PAGES)
    from ui.errors import page_boundary

    with page_boundary():  # whatever the picker or a page did not catch ends as a message, never a traceback
        st.session_state[KEY_MODEL] = model_sidebar()
        engine_sidebar(st.session_state[KEY_MODEL])
        navigation.run()
