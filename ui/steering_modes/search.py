"""Mode "Search a setting": the automatic steering search (Optuna TPE per direction, checked on held-out prompts)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import streamlit as st

from interp.errors import InputError
from interp.loading import LoadedModel
from interp.records import data_folder
from interp.spreadsheet import to_csv_bytes
from steering.runs import behaviour_scorer
from steering.scores import SCORERS
from steering.search import DirectionSearch, SearchResult, SteeringSearch, split_prompts
from steering.search_plots import DAMAGE_TITLES, search_front_plot, unplotted_trials
from steering.vector import SteeringVector
from ui.engine_status import generation_model
from ui.errors import shown_as_message
from ui.records import keep_run
from ui.state import seed_input, trained_reward_model
from ui.steering_modes.common import Mode, start_layer, stoppable_result

KEY_LAYERS = "steer_search_layers"
KEY_TRIALS = "steer_search_trials"
KEY_DIRECTIONS = "steer_search_directions"
KEY_MODES = "steer_search_modes"
KEY_LIMIT = "steer_search_limit"
KEY_SCORER = "steer_search_scorer"
KEY_RUN = "steer_search"  # the Search button; its Stop button is f"{KEY_RUN}_stop"
KEY_SPEC = "steer_search_spec"  # the search on screen (its spec; the result comes from the cache)
KEY_DAMAGE = "steer_search_damage"
# Measured: a trial takes about 1 s on the tiny test model and about 20 s on SmolLM2-135M on 2 CPU cores (8 prompts'
# search split x 2 samples x 30 tokens, scored, with KL). 6 a direction keeps a first look to minutes there; the first
# 6 trials of a study are random and TPE models the front after them, so more trials are where the search pays.
START_TRIALS = 6
DIRECTIONS = {"raise": "Raise the behaviour", "lower": "Lower it"}
SEARCH_MODES = {"add": "Add (x + c·d)", "angular": "Rotate (angular)"}
# Measured on SmolLM2 with the built-in sentiment vector (docs/STEERING.md, "On the default model"): searched over
# layers 7-11 it met |VADER gain| >= 0.3 held out both ways, where layers 3-6 did not lower; layer 12 on breaks the text.
SEARCH_START_LAYERS = (7, 8, 9, 10, 11)


def chosen_layers(layers: list[int]) -> list[int]:
    """Where the layer choice starts: :data:`SEARCH_START_LAYERS` if the vector has them all, else the Add mode's start
    layer and the two above it (as many as the vector has)."""
    if set(SEARCH_START_LAYERS) <= set(layers):
        return list(SEARCH_START_LAYERS)
    first = layers.index(start_layer(layers))
    return layers[first : first + 3]


def draw(model: LoadedModel, vector: SteeringVector) -> None:
    st.subheader("2 · Search a setting")
    st.caption(
        "Instead of a grid you guess, a sampler (Optuna's multi-objective TPE) proposes a layer, a mode and a strength, "
        "scores samples of the *search* prompts, and learns where the front of gain against damage lies — one study for "
        "each direction. The chosen point (the largest gain within the perplexity limit whose text has not collapsed "
        "into repetition) is then checked once on *held-out* prompts the search never saw."
    )
    layers = list(vector.layers)
    if KEY_LAYERS not in st.session_state or not set(st.session_state[KEY_LAYERS]) <= set(layers):
        st.session_state[KEY_LAYERS] = chosen_layers(layers)
    seed_input(KEY_TRIALS, START_TRIALS)
    seed_input(KEY_DIRECTIONS, list(DIRECTIONS))
    seed_input(KEY_MODES, list(SEARCH_MODES))
    seed_input(KEY_LIMIT, SteeringSearch.default("max_perplexity_ratio"))
    reward = trained_reward_model(model)
    scorers = [*SCORERS, "reward"] if reward is not None else list(SCORERS)
    label = {name: behaviour_scorer(model, name, reward) for name in scorers}
    seed_input(KEY_SCORER, scorers[0], allowed=scorers)
    top = st.columns([3, 2, 2])
    chosen = top[0].multiselect("Layers to search", layers, key=KEY_LAYERS, persist_state="session")
    directions = top[1].multiselect(
        "Directions", list(DIRECTIONS), format_func=DIRECTIONS.get, key=KEY_DIRECTIONS, persist_state="session"
    )
    modes = top[2].multiselect("Modes", list(SEARCH_MODES), format_func=SEARCH_MODES.get, key=KEY_MODES, persist_state="session")
    controls = st.columns([2, 2, 3, 1])
    n_trials = controls[0].number_input(
        "Trials per direction", 1, 200, step=1, key=KEY_TRIALS, persist_state="session",
        help="Each trial samples the search prompts once with one setting; the first 6 of a study are random.",
    )  # fmt: skip
    limit = controls[1].number_input(
        "Perplexity limit (x unsteered)", 1.0, 100.0, step=0.5, key=KEY_LIMIT, persist_state="session",
        help="The chosen point's steered text may be at most this many times as perplexing to the unsteered model.",
    )  # fmt: skip
    scorer = controls[2].selectbox(
        "Behaviour score", scorers, format_func=lambda s: label[s].name, key=KEY_SCORER, persist_state="session"
    )
    controls[3].write("")  # lines the button up with the inputs
    clicked = controls[3].button("Search", type="primary", key=KEY_RUN)
    prompts = SteeringSearch.default("prompts")
    search_prompts, held_out = split_prompts(prompts, SteeringSearch.default("held_out_fraction"), SteeringSearch.default("seed"))
    samples = SteeringSearch.default("n_samples")
    st.caption(
        f"Each trial writes {len(search_prompts)} search prompts × {samples} samples of "
        f"{SteeringSearch.default('max_new_tokens')} tokens with the same seeds, then scores them and their KL; "
        f"{len(held_out)} prompts are held out. {int(n_trials)} trials × {max(len(directions), 1)} direction(s); a trial "
        "took about 20 s on SmolLM2-135M on 2 CPU cores (about 1 s on a tiny test model), so a search takes minutes: "
        "Stop ends it after the current trial and keeps the finished ones: the same settings continue from them."
    )
    gen = generation_model(model)
    if clicked:
        st.session_state.pop(KEY_SPEC, None)  # a failed new search must not leave the old one looking current
        with shown_as_message("The search"):
            if not chosen:
                raise InputError("Choose at least one layer to search.")
            st.session_state[KEY_SPEC] = SteeringSearch(
                vector.at_layers(sorted(chosen)), tuple(sorted(chosen)), modes=tuple(modes), scorer=scorer,
                reward_model=reward if scorer == "reward" else None, n_trials=int(n_trials), directions=tuple(directions),
                max_perplexity_ratio=float(limit), storage_path=str(journal_path()),
            )  # fmt: skip
    kept = "its finished trials are kept; press Search with the same settings to continue from them."
    spec, result = stoppable_result(gen, KEY_SPEC, KEY_RUN, "The search", stopped=kept)
    if result is None:
        return
    show(result, behaviour_scorer(model, spec.scorer, spec.reward_model).unit)
    keep_run(gen, spec, result, key="steer_search_keep", label="the search")


def journal_path() -> Path:
    """The page's Optuna journal (in the data folder): a stopped search, or one with more trials, continues from it.
    Studies are named by a digest of their settings, so every session can share the one file (Optuna locks it)."""
    folder = data_folder() / "steering_search"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "studies.journal"


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def show(result: SearchResult, unit: str) -> None:
    damage = st.radio(
        "Damage axis", list(DAMAGE_TITLES), format_func=lambda d: "perplexity ratio" if d == "perplexity_ratio" else "KL",
        horizontal=True, key=KEY_DAMAGE, persist_state="session",
    )  # fmt: skip
    for search in result.searches:
        with st.container(border=True):
            show_direction(search, result, unit, damage)
    n_trials = sum(len(s.trials) for s in result.searches)
    st.caption(
        f"{_count(n_trials, 'trial')} and the held-out checks in {result.seconds:.0f} s "
        f"({result.seconds / max(n_trials, 1):.1f} s a trial, held-out checks included); "
        f"{len(result.search_prompts)} search prompts, {len(result.held_out_prompts)} held out; unsteered search prompts "
        f"score {result.baseline.mean_behaviour:+.3f} {unit}."
    )
    frame = result.to_frame()
    with st.expander(f"Every trial ({len(frame)})"):
        st.dataframe(frame, hide_index=True)
        csv = functools.partial(to_csv_bytes, frame)
        st.download_button("Download the trials (CSV)", data=csv, file_name="steering_search.csv", on_click="ignore")


def show_direction(search: DirectionSearch, result: SearchResult, unit: str, damage: str) -> None:
    st.markdown(f"**{DIRECTIONS[search.direction]}**")
    st.plotly_chart(search_front_plot(search, result.scorer, result.max_perplexity_ratio, damage))
    left_out = unplotted_trials(search, damage)
    if left_out:
        st.caption(f"{_count(left_out, 'trial')} not drawn: their text could not be scored (infinite perplexity ratio or gain).")
    chosen, check = search.chosen, search.held_out
    if chosen is None or check is None:
        verb = "raised" if search.direction == "raise" else "lowered"
        st.warning(
            f"No trial {verb} the behaviour while keeping perplexity within {result.max_perplexity_ratio:g}x and its text "
            "free of collapsed repetition. Try more trials, other layers, the other mode, or a larger perplexity limit "
            "(and read the damage it allows)."
        )
        return
    setting = st.columns(3)
    setting[0].metric("Layer", f"{chosen.layer}")
    setting[1].metric("Mode", SEARCH_MODES[chosen.mode])
    setting[2].metric(
        "Strength", chosen.strength_text(), help="the coefficient of an addition (× the vector), the angle of a rotation"
    )
    held = st.columns(4)
    held[0].metric(
        f"Gain, held out ({unit})", f"{check.gain:+.3f}", f"{chosen.gain:+.3f} on the search prompts", delta_color="off",
        delta_arrow="off", help="toward the direction: negated when lowering",
    )  # fmt: skip
    ratio = f"x{check.perplexity_ratio:.2f}" if math.isfinite(check.perplexity_ratio) else "unknown"
    held[1].metric("Perplexity, held out", ratio, "x unsteered", delta_color="off", delta_arrow="off")
    held[2].metric("KL(unsteered ‖ steered), held out", f"{check.kl.mean:.3f} nats")
    change = 100 * (check.distinct2 - check.baseline_distinct2)
    held[3].metric("Distinct bigrams, held out", f"{100 * check.distinct2:.0f}%", f"{change:+.0f} pts")
    effects = check.reliability
    spread = st.columns(2)
    spread[0].metric(
        f"Effect per prompt, {100 * effects.confidence:.0f}% interval ({unit})", f"[{effects.low:+.3f}, {effects.high:+.3f}]",
        help=f"Student t over the {effects.n_prompts} held-out prompts (each prompt counts once); the raw change in score",
    )  # fmt: skip
    spread[1].metric(
        "Anti-steerable prompts", f"{100 * effects.anti_steerable_fraction:.0f}%",
        help=f"the share of the {effects.n_prompts} held-out prompts moved the wrong way",
    )  # fmt: skip
    st.caption(
        f"Chosen {chosen.describe()} (trial {chosen.number}): the largest gain less one standard error over the search "
        f"prompts ({chosen.gain:+.3f} − {chosen.gain_se:.3f}) within the limits. Read the held-out numbers: it is the best of "
        f"{_count(len(search.trials), 'try', 'tries')} on the search prompts, so its search gain is biased upwards."
    )


MODE = Mode("search", "Search a setting", draw)
