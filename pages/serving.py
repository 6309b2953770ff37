"""Serving: watch the steered-model server live (traffic, latency, throughput, cost) and run its A/B tests."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from serve.experiments import MEASURE_NAMES, METRICS
from ui.errors import shown_as_message
from ui.model import ensure_app_shell
from ui.render import md_escape
from ui.serving_client import (
    DEFAULT_URL,
    ServerClient,
    ServerRefused,
    ServerUnreachable,
    arm_body,
    arms_figure,
    cost_per_million_tokens,
    history_figure,
    latency_figure,
    requests_figure,
    vectors_figure,
)

KEY_URL = "serving_url"
KEY_API_KEY = "serving_api_key"
KEY_REFRESH = "serving_refresh_seconds"
KEY_PRICE = "serving_price_per_hour"
KEY_HISTORY = "serving_history"
KEY_EXPERIMENT = "serving_experiment"
KEY_MEASURE = "serving_measure"
KEY_KEEP_NOTE = "serving_keep_note"
KEY_KEEP = "serving_keep"
KEY_NEW = "serving_new"
KEY_NEW_NAME = "serving_new_name"
KEY_CREATE = "serving_create"
HISTORY_POINTS = 120  # refreshes kept for the throughput chart
UNSTEERED = "(unsteered)"
CI_LOW, CI_HIGH = "95% CI low", "95% CI high"  # each measure's interval, beside its mean in the arms table
START_COMMAND = "make serve"


def connection() -> tuple[ServerClient, int, float]:
    """The server to watch, how often to refresh, and the machine's price."""
    columns = st.columns([3, 2, 1, 1])
    url = columns[0].text_input("Server URL", value=DEFAULT_URL, key=KEY_URL)
    api_key = columns[1].text_input("API key (if the server needs one)", type="password", key=KEY_API_KEY)
    refresh = columns[2].number_input("Refresh every N s (0 = off)", min_value=0, max_value=600, value=5, key=KEY_REFRESH)
    price = columns[3].number_input("Machine price ($/h)", min_value=0.0, max_value=1000.0, value=0.50, step=0.05, key=KEY_PRICE)
    return ServerClient(url, api_key), int(refresh), float(price)


def monitoring(client: ServerClient, price: float) -> None:
    """Metrics, charts and recent requests from one fetch of the server."""
    try:
        snapshot, recent = client.snapshot(), client.recent()
    except ServerUnreachable as error:
        st.info(md_escape(str(error)), icon=":material/cloud_off:")
        st.code(START_COMMAND, language="bash")
        return
    history = st.session_state.setdefault(KEY_HISTORY, [])
    history.append({"time": dt.datetime.now(), "tokens_per_second": snapshot.tokens_per_second,
                    "queue_depth": snapshot.queue_depth, "batch_rows": snapshot.batch_rows})  # fmt: skip
    del history[:-HISTORY_POINTS]
    cost = cost_per_million_tokens(price, snapshot.tokens_per_second)
    numbers = st.columns(5)
    numbers[0].metric("Tokens/s (last 10 s)", f"{snapshot.tokens_per_second:.1f}")
    numbers[1].metric("Queue depth", f"{snapshot.queue_depth:.0f}")
    numbers[2].metric("Batch rows", f"{snapshot.batch_rows:.0f}")
    numbers[3].metric("Tokens generated", f"{snapshot.tokens_generated:,.0f}")
    numbers[4].metric("$ per 1M tokens", "—" if cost is None else f"${cost:,.2f}")
    st.caption(
        f"Cost = machine price / (tokens/s × 3600) × 1e6 = ${price:g}/h at {snapshot.tokens_per_second:.1f} tokens/s"
        + ("" if cost is not None else " (no tokens generated in the last 10 s)")
    )
    charts = st.columns(2)
    charts[0].plotly_chart(requests_figure(snapshot), key="serving_requests_chart")
    charts[1].plotly_chart(latency_figure(snapshot), key="serving_latency_chart")
    charts = st.columns(2)
    charts[0].plotly_chart(history_figure(history), key="serving_history_chart")
    charts[1].plotly_chart(vectors_figure(snapshot), key="serving_vectors_chart")
    st.subheader("Recent requests")
    if recent:
        table = pd.DataFrame(recent)
        table["time"] = pd.to_datetime(table["time"], unit="s").dt.strftime("%H:%M:%S")
        table["vectors"] = table["vectors"].map(", ".join)
        table = table.rename(columns={"ttft_seconds": "first token (s)", "seconds": "total (s)"}).fillna("")
        st.dataframe(table, hide_index=True)
    else:
        st.caption("No requests yet: point an OpenAI client at the server (docs/SERVING.md).")


def experiment_results(client: ServerClient, experiments: list[dict]) -> None:
    """Each arm's counts, means and their 95% intervals, the test's sentence, and Keep."""
    if not experiments:
        st.caption("No experiments yet: create one below.")
        return
    name = st.selectbox("Experiment", [e["name"] for e in experiments], key=KEY_EXPERIMENT)
    summary = client.summary(name)
    rows = []
    for arm in summary["arms"]:
        row = {"arm": arm["name"], "setting": arm["description"], "responses": arm["responses"], "feedback": arm["feedback"]}
        for estimate in arm["estimates"]:
            label = MEASURE_NAMES[estimate["measure"]]
            row[f"{label} (n)"] = estimate["n"]
            for column, field in ((label, "mean"), (f"{label} {CI_LOW}", "low"), (f"{label} {CI_HIGH}", "high")):
                row[column] = None if estimate[field] is None else round(estimate[field], 3)
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="serving_arms_table")
    st.markdown(f"**{md_escape(summary['sentence'])}**")
    measure = st.selectbox(
        "Measure", METRICS, index=METRICS.index(summary["metric"]), format_func=MEASURE_NAMES.get, key=KEY_MEASURE
    )
    st.plotly_chart(arms_figure(summary, measure), key="serving_arms_chart")
    if measure != summary["metric"]:
        st.caption(md_escape(next(c["sentence"] for c in summary["comparisons"] if c["measure"] == measure)))
    with st.expander("Keep this experiment", icon=":material/bookmark:"):
        note = st.text_input("Note (what you were checking)", key=KEY_KEEP_NOTE)
        if st.button("Keep", key=KEY_KEEP):
            with shown_as_message("Keeping the experiment"):
                run_id = client.keep(name, note)
                st.success(f"Kept as run {md_escape(run_id[:8])}. Open the Experiments page to see it.")


def new_experiment(client: ServerClient) -> None:
    """Two arms from the library's vectors and coefficients."""
    vectors = [UNSTEERED, *client.vectors()]
    with st.form(KEY_NEW):
        name = st.text_input("Name", value="steered-vs-plain", key=KEY_NEW_NAME)
        arms = st.columns(2)
        picks = []
        for column, label, default in zip(arms, ("A", "B"), (0, min(1, len(vectors) - 1)), strict=True):
            arm_name = column.text_input(f"Arm {label} name", value="plain" if label == "A" else "steered")
            vector = column.selectbox(f"Arm {label} vector", vectors, index=default)
            coefficient = column.number_input(f"Arm {label} coefficient", value=3.0, min_value=-100.0, max_value=100.0)
            picks.append(arm_body(arm_name, None if vector == UNSTEERED else vector, coefficient))
        split = st.slider("Share of users in arm A", 0.05, 0.95, 0.5, 0.05)
        metric = st.selectbox("Decide on", METRICS, format_func=MEASURE_NAMES.get)
        if st.form_submit_button("Create experiment", key=KEY_CREATE):
            with shown_as_message("Creating the experiment"):
                client.create_experiment({"name": name, "arms": picks, "split": split, "metric": metric})
                st.success(f"Experiment {md_escape(name)} is running: send requests with `user` and `experiment`.")


def ab_tests(client: ServerClient) -> None:
    st.header("A/B tests")
    st.caption(
        "Users are split by a stable hash of their `user` id; every reply names its arm and a `response_id` for "
        "`POST /v1/feedback`. Automatic scores (sentiment, reward model, perplexity) are added in the background."
    )
    try:
        experiments = client.experiments()
    except ServerUnreachable as error:
        st.info(md_escape(str(error)), icon=":material/cloud_off:")
        return
    except ServerRefused as error:  # e.g. a server started without experiments
        st.info(md_escape(str(error)), icon=":material/science:")
        return
    with shown_as_message("Reading the experiment"):
        experiment_results(client, experiments)
    with st.expander("New experiment", icon=":material/add:"):
        with shown_as_message("Reading the vector library"):
            new_experiment(client)


ensure_app_shell()  # a bookmark to this page on a fresh server still gets the app's navigation and sidebar
st.title("Serving")
st.markdown(
    "The OpenAI-compatible server with per-request steering (`make serve`, docs/SERVING.md): its traffic, latency and "
    "cost, live, and the A/B tests that tell whether a vector helps."
)
server, refresh_seconds, machine_price = connection()
st.header("Monitoring")
live = st.fragment(run_every=refresh_seconds if refresh_seconds > 0 else None)(monitoring)
with shown_as_message("Reading the server's metrics"):
    live(server, machine_price)
ab_tests(server)
