"""Home: what the loaded model is, and what it predicts next for a prompt."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from interp.engine import engine_for, request_for
from interp.forward import NextTokenRun
from interp.plots import next_token_bar
from ui.cached import cached_run
from ui.errors import shown_as_message
from ui.live import last_streamed, stop_requested, stream_texts
from ui.model import model_card, require_model
from ui.render import token_chips, warn_unknown_text
from ui.state import seed_input

KEY_PROMPT = "home_prompt"
KEY_WRITE = "home_write"
KEY_WRITE_TOKENS = "home_write_tokens"
KEY_WRITE_TEMPERATURE = "home_write_temperature"
KEY_WRITE_REQUEST = "home_write_request"
KEY_WRITE_LIVE = "home_write_live"
KEY_TOP_K = "home_top_k"
EXAMPLE_PROMPT = "The Eiffel Tower is in the city of"

st.title("Steerscope")
st.markdown(
    "Look inside a language model and steer it — offline, on your laptop. "
    "Pick a page on the left: **Attention** for what each head looks at, **Attribution** for which "
    "words drove a prediction, **Circuits** for which components cause it, **Steering** to push the model "
    "toward a concept and measure what it costs."
)


def continue_section(model, prompt: str) -> None:
    """The model writes on from the prompt, token by token, on the shared engine (Stop keeps what it wrote)."""
    st.subheader("Let it write")
    cols = st.columns([2, 2, 1])
    n_tokens = cols[0].number_input("New tokens", 1, 200, 40, key=KEY_WRITE_TOKENS)
    temperature = cols[1].slider("Temperature (0 = always the likeliest token)", 0.0, 1.5, 0.0, 0.1, key=KEY_WRITE_TEMPERATURE)
    if cols[2].button("Write", type="primary", key=KEY_WRITE):
        with shown_as_message("Writing"):
            st.session_state[KEY_WRITE_REQUEST] = request_for(model, prompt, max_new_tokens=int(n_tokens),
                                                              temperature=float(temperature), label="Home: writing")  # fmt: skip
    request = st.session_state.get(KEY_WRITE_REQUEST)
    if request is None or request.prompt != prompt:
        return
    settings = f"{request.prompt_ids}/{request.max_new_tokens}/{request.sampling}"
    shown = last_streamed(KEY_WRITE_LIVE)
    if shown is not None and shown.key == settings and (shown.finished or stop_requested(KEY_WRITE_LIVE)):
        st.text(prompt + shown.texts[0])  # written already, or stopped: a rerun does not write it again
        if not shown.finished:
            st.caption("Stopped.")
        return
    slot = st.empty()
    with shown_as_message("Writing"):
        stream = engine_for(model).submit(request)
        events = ((event.sample, event) for event in stream.events())
        written = stream_texts(KEY_WRITE_LIVE, settings, events, [slot], [prompt], stream.cancel)
        slot.text(prompt + written.texts[0])


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
    continue_section(model, prompt)
