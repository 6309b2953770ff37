"""Attention: every head's pattern on your prompt, which heads are which type, and the logit lens."""

from __future__ import annotations

import functools

import streamlit as st

from interp.attention import SCORE_NAMES, SCORE_TITLES, AttentionResult, AttentionRun, HeadScoresRun
from interp.components import head_label
from interp.lens import LogitLensRun
from interp.plots.attention import (
    clicked_head,
    head_grid,
    lens_heatmap,
    lens_target_line,
    pattern_heatmap,
    score_heatmap,
)
from ui.cached import DISPLAY_LIMIT, cached_run
from ui.downloads import csv_download, figure_downloads
from ui.errors import shown_as_message
from ui.model import require_model
from ui.progress import run_with_progress
from ui.records import keep_run
from ui.render import md_escape, token_chips, warn_unknown_text
from ui.state import seed_input

KEY_EXAMPLE = "attn_example"
KEY_PROMPT = "attn_prompt"
KEY_LAYER = "attn_layer"
KEY_HEAD = "attn_head"
KEY_GRID = "attn_grid"
KEY_SCORE_MAP = "attn_score_map"
KEY_SCORE_NAME = "attn_score_name"
KEY_QUERY = "attn_query"
KEY_TARGET = "attn_lens_target"
KEY_TYPES_PATTERN = "attn_types_pattern"

EXAMPLES = {
    "Induction: repeated text": "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog.",
    "Indirect object (IOI)": "When Mary and John went to the store, John gave a drink to",
    "Factual recall": "The Eiffel Tower is in the city of",
}


def _use_example() -> None:
    st.session_state[KEY_PROMPT] = EXAMPLES[st.session_state[KEY_EXAMPLE]]


def _open_clicked_head(chart_key: str, n_heads: int) -> None:
    """Chart click callback: open the clicked head (runs before the rerun, so widgets may be set)."""
    points = [p for p in st.session_state[chart_key].selection.points if "point_index" in p]
    if points:
        st.session_state[KEY_LAYER], st.session_state[KEY_HEAD] = clicked_head(points[0]["point_index"], n_heads)


def heads_section(model, result: AttentionResult) -> None:
    """Every head at a glance, one head opened, and what one query token attends to."""
    info = model.info
    st.markdown(
        f"**All {info.n_layers * info.n_heads} heads** ({info.n_layers} layers × {info.n_heads} heads), "
        "each scaled to its own maximum — click one to open it"
    )
    st.plotly_chart(
        head_grid(result),
        key=KEY_GRID,
        on_select=functools.partial(_open_clicked_head, KEY_GRID, info.n_heads),
        selection_mode="points",
        config={"displaylogo": False},
    )
    pattern_col, query_col = st.columns([3, 2], gap="large")
    with query_col:
        pick_layer, pick_head = st.columns(2)
        layer = pick_layer.number_input("Layer", 0, info.n_layers - 1, key=KEY_LAYER, persist_state="session")
        head = pick_head.number_input("Head", 0, info.n_heads - 1, key=KEY_HEAD, persist_state="session")
        query = st.select_slider(
            "Query token: what does it attend to?",
            options=list(range(len(result.tokens))),
            value=len(result.tokens) - 1,
            format_func=lambda i: f"{i}: {result.tokens[i]}",
            key=KEY_QUERY,
        )
        row = result.head(layer, head)[query, : query + 1]
        peak = float(row.max()) or 1.0
        token_chips(list(result.tokens[: query + 1]), weights=[float(w) / peak for w in row], titles=[f"{w:.3f}" for w in row])
        st.caption(
            f"Colour: attention from token {query} ({md_escape(repr(result.tokens[query]))}) to each earlier token, "
            f"relative to its largest weight ({peak:.3f}). Hover a token for its weight."
        )
    name = f"attention_{head_label(layer, head)}"
    with pattern_col:
        figure = pattern_heatmap(result, layer, head)
        st.plotly_chart(figure, config={"displaylogo": False, "toImageButtonOptions": {"filename": name}})
    with query_col:
        figure_downloads(figure, name)
        csv_download(lambda: result.to_frame(layer, head), f"{name}.csv", "Download this head's pattern (CSV)")


def head_types_section(model, result: AttentionResult) -> None:
    """Which heads are induction, previous-token, duplicate-token or sink heads (probed once per model)."""
    spec = HeadScoresRun()
    with st.spinner("Probing every head with repeated random tokens (once per model)"):
        scores = cached_run(model, spec)
    name = st.radio("Score", SCORE_NAMES, format_func=SCORE_TITLES.get, horizontal=True, key=KEY_SCORE_NAME)
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(
            score_heatmap(scores, name),
            key=KEY_SCORE_MAP,
            on_select=functools.partial(_open_clicked_head, KEY_SCORE_MAP, model.info.n_heads),
            selection_mode="points",
            config={"displaylogo": False},
        )
    with right:
        st.markdown(f"**Top {SCORE_TITLES[name].lower()} heads**")
        top = [{"head": head_label(layer, head), "score": round(value, 3)} for layer, head, value in scores.top_heads(name, 10)]
        st.dataframe(top, hide_index=True)
        st.caption(
            f"Scores are mean attention weights (0–1) on {scores.n_sequences} sequences of {scores.repeat_length} random "
            f"tokens repeated twice (seed {scores.seed}). Induction: attention from a repeated token to the token after its "
            "first occurrence. Click a cell to open that head: its pattern on your prompt appears below."
        )
        csv_download(scores.to_frame, "head_scores.csv", "Download all head scores (CSV)")
        keep_run(model, spec, scores, key="attn_scores_keep", label="the head-type scores")
    # The open head, here too: a click on the map should show its pattern without a trip to the Heads tab.
    open_layer, open_head = st.session_state[KEY_LAYER], st.session_state[KEY_HEAD]
    st.markdown(
        f"**Open head {head_label(open_layer, open_head)}** on your prompt "
        f"({SCORE_TITLES[name].lower()} score {scores.score(name)[open_layer, open_head]:.2f}; "
        "its query view is in the Heads tab)"
    )
    st.plotly_chart(pattern_heatmap(result, open_layer, open_head), key=KEY_TYPES_PATTERN, config={"displaylogo": False})


def lens_section(model, prompt: str) -> None:
    """The logit lens: the residual stream decoded after every layer, optionally following one token."""
    target = st.text_input("Follow a target token (optional, one token, e.g. ' Paris')", key=KEY_TARGET)
    spec = LogitLensRun(prompt, target or None, max_tokens=DISPLAY_LIMIT)
    lens = run_with_progress(model, spec, "Decoding the residual stream after every layer")
    lens_figure = lens_heatmap(lens)
    st.plotly_chart(lens_figure, config={"displaylogo": False})
    if lens.target is not None:
        st.plotly_chart(lens_target_line(lens), config={"displaylogo": False})
        st.caption(
            f"Probability and rank of {md_escape(repr(lens.target))} as the next token after the last position, "
            "read after each layer."
        )
    figure_downloads(lens_figure, "logit_lens")
    csv_download(lens.to_frame, "logit_lens.csv", "Download the lens (CSV)")
    keep_run(model, spec, lens, key="lens_keep", label="the logit lens")


st.title("Attention")
INTRO = (
    "What each head looks at in your prompt, which heads are induction or previous-token heads, "
    "and how the prediction forms layer by layer."
)
st.caption(INTRO)
model = require_model()
seed_input(KEY_LAYER, 0, allowed=range(model.info.n_layers))  # a head opened on another model may not exist here
seed_input(KEY_HEAD, 0, allowed=range(model.info.n_heads))
st.selectbox(
    "Example prompts",
    list(EXAMPLES),
    key=KEY_EXAMPLE,
    index=None,
    placeholder="Pick an example or type below",
    on_change=_use_example,
)
seed_input(KEY_PROMPT, next(iter(EXAMPLES.values())))  # kept through a model switch (persist_state)
prompt = st.text_area(f"Prompt (up to {DISPLAY_LIMIT} tokens)", key=KEY_PROMPT, height=80, persist_state="session")
warn_unknown_text(model, prompt)

result = None
patterns_spec = AttentionRun(prompt, max_tokens=DISPLAY_LIMIT)
with shown_as_message("Recording attention patterns"), st.spinner("Recording every head's attention pattern"):
    result = cached_run(model, patterns_spec)
if result is None:
    st.stop()

heads_tab, types_tab, lens_tab = st.tabs(["Heads", "Head types", "Logit lens"])
with heads_tab:
    heads_section(model, result)
    keep_run(model, patterns_spec, result, key="attn_keep", label="every head's pattern on this prompt")
with types_tab, shown_as_message("Scoring heads"):
    head_types_section(model, result)
with lens_tab, shown_as_message("Running the logit lens"):
    lens_section(model, prompt)
