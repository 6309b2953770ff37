"""Home: what the loaded model is, and what it predicts next for a prompt."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from interp.forward import NextTokenRun
from interp.plots import next_token_bar
from ui.cached import cached_run
from ui.errors import shown_as_message
from ui.model import model_card, require_model
from ui.render import token_chips, warn_unknown_text
from ui.state import seed_input

KEY_PROMPT = "home_prompt"
KEY_TOP_K = "home_top_k"
EXAMPLE_PROMPT = "The Eiffel Tower is in the city of"

st.title("Steerscope")
st.markdown(
    "Look inside a language model and steer it — offline, on your laptop. "
    "Pick a page on the left: **Attention** for what each head looks at, **Attribution** for which "
    "words drove a prediction, **Circuits** for which components cause it, **Steering** to push the model "
    "toward a concept and measure what it costs."
)

model = require_model()

left, right = st.columns([3, 2], gap="large")
with right:
    st.subheader("Model card")
    model_card(model.info)
with left:
    st.subheader("Next-token predictions")
    seed_input(KEY_PROMPT, EXAMPLE_PROMPT)  # kept through a model switch (persist_state)
    prompt = st.text_area("Prompt", key=KEY_PROMPT, height=90, persist_state="session")
    warn_unknown_text(model, prompt)
    top_k = st.slider("How many predictions", 3, 30, NextTokenRun.default("k"), key=KEY_TOP_K)
    with shown_as_message("Predicting the next token"):
        predictions = cached_run(model, NextTokenRun(prompt, k=top_k))
        st.plotly_chart(next_token_bar(predictions), width="stretch", config={"displaylogo": False})
        table = pd.DataFrame(
            {
                "rank": range(1, len(predictions.tokens) + 1),
                "token": predictions.tokens,
                "probability (%)": [round(100 * p, 3) for p in predictions.probabilities],
                "logit": [round(v, 3) for v in predictions.logits],
                "token id": predictions.token_ids,
            }
        )
        st.dataframe(table, hide_index=True, width="stretch", key="home_predictions")
        st.caption(f"The prompt as the model reads it: {len(predictions.prompt_tokens)} tokens")
        token_chips(predictions.prompt_tokens)
