"""The automatic steering search on the default model: does the searched setting steer sentiment both ways, held out?

    .venv/bin/python -m bench.steering_search            # 16 trials per direction
    .venv/bin/python -m bench.steering_search --trials 8 --journal /tmp/search.journal

A mean-difference vector of the built-in sentiment pairs at layers 7-11 (3-6 did not lower, 12 on breaks the
text); VADER scores the text; 21 neutral prompts, a third held out, 4 samples each (2 samples of 15 prompts left
VADER's noise about as large as the effect). The target: |VADER gain| >= 0.3 in both directions on the held-out
prompts, with the perplexity ratio <= 2 (KL shown).
"""

from __future__ import annotations

import argparse
import time

from bench.timing import table
from interp import load_model
from steering import NEUTRAL_PROMPTS, built_in, mean_difference
from steering.search import SteeringSearch

LAYERS = (7, 8, 9, 10, 11)
MORE_PROMPTS = (
    "The train to the coast leaves at",
    "In the kitchen there was",
    "The teacher asked the class to",
    "My brother called me and said",
    "The museum opened its doors and",
    "After lunch we walked to",
    "The package that arrived today",
    "On the way home I noticed",
    "The email from the office said",
    "This morning the bus was",
    "The new phone I bought",
    "At the end of the street there is",
    "The weekend plans for our family are",
)
TARGET_GAIN, TARGET_RATIO = 0.3, 2.0


def run(quick: bool = False, n_trials: int | None = None, journal: str | None = None, seed: int = 0, n_samples: int = 4) -> str:
    """The markdown table; ``quick`` (as bench/__main__.py passes it) searches 6 trials per direction instead of 16."""
    n_trials = n_trials or (6 if quick else 16)
    model = load_model(None, device="cpu")
    vector = mean_difference(model, built_in("sentiment"), layers=list(LAYERS), position="mean")
    spec = SteeringSearch(
        vector, scorer="sentiment", prompts=NEUTRAL_PROMPTS + MORE_PROMPTS, n_trials=n_trials, seed=seed, n_samples=n_samples,
        storage_path=journal,
    )  # fmt: skip
    start = time.perf_counter()
    result = spec.run(model, lambda fraction, message: print(f"\r{fraction:4.0%} {message:<90}", end="", flush=True))
    print()
    seconds = time.perf_counter() - start
    rows = []
    for found in result.searches:
        chosen, held = found.chosen, found.held_out
        if chosen is None:
            rows.append([found.direction, "none within the limits", "", "", "", "", "", "", "no"])
            continue
        effects = held.reliability
        met = held.gain >= TARGET_GAIN and held.perplexity_ratio <= TARGET_RATIO
        rows.append(
            [
                found.direction,
                chosen.describe(),
                f"{chosen.gain:+.3f} ± {chosen.gain_se:.3f} (×{chosen.perplexity_ratio:.2f})",
                "{:+.3f} [{:+.2f}, {:+.2f}]".format(held.gain, *effects.gain_interval),
                f"×{held.perplexity_ratio:.2f}",
                f"{held.kl.mean:.3f}",
                f"{held.distinct2:.2f} / {held.baseline_distinct2:.2f}",
                f"{effects.anti_steerable_fraction:.0%}",
                "yes" if met else "no",
            ]
        )
    header = ["direction", "chosen", "search gain ± SE (ppl)", "held-out gain [95% CI]", "held-out ppl", "KL (nats)",
              "distinct-2 / unsteered", "wrong way", "target met"]  # fmt: skip
    return (
        f"### Steering search, SmolLM2-135M-Instruct, sentiment mean difference at layers {list(LAYERS)}\n\n"
        f"{n_trials} trials per direction (modes {', '.join(spec.modes)}), {len(result.search_prompts)} search prompts, "
        f"{len(result.held_out_prompts)} held out, {spec.n_samples} samples × {spec.max_new_tokens} tokens a trial "
        f"({spec.held_out_samples or 2 * spec.n_samples} per held-out prompt); "
        f"{seconds:.0f} s on CPU.\n\n" + table(header, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.steering_search", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per direction")
    parser.add_argument("--journal", help="Optuna journal file (a rerun continues it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt")
    args = parser.parse_args()
    print(run(n_trials=args.trials, journal=args.journal, seed=args.seed, n_samples=args.samples))


if __name__ == "__main__":
    main()
