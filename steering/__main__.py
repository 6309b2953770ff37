"""Steering batch jobs from the command line: an evaluation of one setting, or a layer x coefficient sweep.

    python -m steering evaluate --vector happy.safetensors --layer 6 --coefficient 4 --prompts prompts.csv --out eval.csv
    python -m steering sweep --vector happy.safetensors --layers 4,6,8 --coefficients 2,4,8 --out sweep.csv --ray auto
    python -m steering search --pairs sentiment --layers 3,4,5 --scorer sentiment --n-trials 16 --journal search.journal

Each command builds the spec the Steering page runs (:class:`~steering.runs.SteeringBatchEvaluation` for a prompt
file, :class:`~steering.runs.SteeringEvaluation` for the built-in prompts or with ``--n-samples``,
:class:`~steering.runs.SteeringSweep`), so the numbers are the page's. The vector file is read as an upload is
(safetensors, llama.cpp GGUF control vector or ``.npy``; never pickle) and checked against the model.
``--ray auto|ADDRESS`` runs the steps or cells on Ray workers (:mod:`steering.distributed`) with the same result.
``search`` runs :class:`~steering.search.SteeringSearch` (Optuna TPE per direction) on a vector file or on a vector made
here from contrast pairs (``--pairs``: a built-in set or a ``positive,negative`` CSV), prints each direction's chosen
setting and its held-out figures, and with ``--journal`` continues the same search where a previous run left it.
Output, errors and exit status as ``python -m interp``: 0 done, 1 an unexpected error, 2 bad input, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _numbers(kind: type, what: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a comma-separated list like 1,2,4, not {text!r}") from None

    return parse


def _parser() -> argparse.ArgumentParser:
    from interp.__main__ import add_ray_options
    from steering.runs import SCORER_NAMES, SteeringEvaluation, SteeringSweep

    parser = argparse.ArgumentParser(prog="python -m steering", description="Steerscope steering batch jobs.")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="unsteered vs steered samples of some prompts at one setting, scored")
    sweep = commands.add_parser("sweep", help="every layer x coefficient evaluated, with a recommended setting")
    evaluate.add_argument("--layer", type=int, required=True)
    evaluate.add_argument("--coefficient", type=float, required=True)
    sweep.add_argument("--layers", type=_numbers(int, "--layers"), required=True, help="e.g. 4,6,8")
    sweep.add_argument("--coefficients", type=_numbers(float, "--coefficients"), required=True, help="e.g. 2,4,8")
    sweep.add_argument("--goal", choices=("raise", "lower", "both"), default=SteeringSweep.default("goal"))
    sweep.add_argument("--max-perplexity-ratio", type=float, default=SteeringSweep.default("max_perplexity_ratio"))
    for command in (evaluate, sweep):
        command.add_argument("--vector", type=Path, required=True, help="steering vector: .safetensors, .gguf or .npy")
        command.add_argument("--prompts", type=Path, help="prompt file (CSV/TSV/TXT/JSONL, a 'prompt' column); default: built-in")
        command.add_argument("--out", type=Path, required=True, help="results CSV (spreadsheet-safe)")
        command.add_argument("--model", default=None, help="checkpoint folder, .gguf file or cached hub id (default: embedded)")
        names = [name for name in SCORER_NAMES if name != "reward"]  # a reward model is trained in the app, not a file here
        command.add_argument("--scorer", choices=names, default=SteeringEvaluation.default("scorer"))
        command.add_argument("--max-new-tokens", type=int, default=SteeringEvaluation.default("max_new_tokens"))
        command.add_argument("--temperature", type=float, default=SteeringEvaluation.default("temperature"))
        command.add_argument("--seed", type=int, default=SteeringEvaluation.default("seed"))
        add_ray_options(command)
    evaluate.add_argument("--n-samples", type=int, help="samples per prompt (default: 1 for a prompt file, else 2)")
    sweep.add_argument("--n-samples", type=int, default=SteeringSweep.default("n_samples"), help="samples per prompt")
    _search_parser(commands, SCORER_NAMES)
    return parser


def _search_parser(commands, scorer_names: tuple[str, ...]) -> None:
    from steering.make import POSITIONS
    from steering.search import SteeringSearch

    search = commands.add_parser("search", help="Optuna TPE over layer, mode and strength per direction, checked held out")
    given = search.add_mutually_exclusive_group(required=True)
    given.add_argument("--vector", type=Path, help="steering vector: .safetensors, .gguf or .npy")
    given.add_argument("--pairs", help="make a mean-difference vector from a built-in pair set (e.g. sentiment) or a CSV")
    search.add_argument("--position", choices=POSITIONS, default="mean", help="where --pairs texts are read (default mean)")
    search.add_argument("--layers", type=_numbers(int, "--layers"), help="layers to search, e.g. 3,4,5 (required with --pairs)")
    search.add_argument("--modes", type=_numbers(str, "--modes"), default=SteeringSearch.default("modes"), help="add,angular")
    search.add_argument("--directions", type=_numbers(str, "--directions"), default=SteeringSearch.default("directions"))
    coefficients = SteeringSearch.default("coefficient_range")
    search.add_argument("--coefficients", type=_numbers(float, "--coefficients"), default=coefficients,
                        help="low,high magnitude of the coefficient (log scale)")  # fmt: skip
    search.add_argument("--angles", type=_numbers(float, "--angles"), default=SteeringSearch.default("angle_range"),
                        help="low,high magnitude of the angle in degrees")  # fmt: skip
    search.add_argument("--n-trials", type=int, default=SteeringSearch.default("n_trials"), help="trials per direction")
    search.add_argument("--held-out-fraction", type=float, default=SteeringSearch.default("held_out_fraction"))
    search.add_argument("--max-perplexity-ratio", type=float, default=SteeringSearch.default("max_perplexity_ratio"))
    search.add_argument("--n-samples", type=int, default=SteeringSearch.default("n_samples"), help="samples per prompt")
    search.add_argument("--held-out-samples", type=int, default=0, help="samples per held-out prompt (0: twice --n-samples)")
    search.add_argument("--journal", type=Path, help="Optuna journal file: a rerun of the same search continues it")
    search.add_argument("--prompts", type=Path, help="prompt file (CSV/TSV/TXT/JSONL, a 'prompt' column); default: built-in")
    search.add_argument("--out", type=Path, help="trials CSV, one row per trial (spreadsheet-safe)")
    search.add_argument("--model", default=None, help="checkpoint folder, .gguf file or cached hub id (default: embedded)")
    search.add_argument(
        "--scorer", choices=[name for name in scorer_names if name != "reward"], default=SteeringSearch.default("scorer")
    )
    search.add_argument("--max-new-tokens", type=int, default=SteeringSearch.default("max_new_tokens"))
    search.add_argument("--temperature", type=float, default=SteeringSearch.default("temperature"))
    search.add_argument("--seed", type=int, default=SteeringSearch.default("seed"))


def _prompts(args: argparse.Namespace, model) -> tuple[str, ...] | None:
    from interp.errors import InputError
    from interp.prompt_files import read_prompt_file
    from interp.tokens import tokenize

    if args.prompts is None:
        return None
    try:
        data = args.prompts.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read the prompt file {args.prompts}: {exc.strerror or exc}.") from None
    prompts = read_prompt_file(args.prompts.name, data, count_tokens=lambda p: len(tokenize(model, p)))
    print(prompts.summary(), file=sys.stderr)
    return tuple(row.prompt for row in prompts.rows)


def _spec(args: argparse.Namespace, model, vector):
    from steering.runs import SteeringBatchEvaluation, SteeringEvaluation, SteeringSweep

    prompts = _prompts(args, model)
    given = {} if prompts is None else {"prompts": prompts}
    common = {"scorer": args.scorer, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed}
    if args.command == "sweep":
        return SteeringSweep(
            vector.at_layers(args.layers), args.layers, args.coefficients, **common, **given, n_samples=args.n_samples,
            goal=args.goal, max_perplexity_ratio=args.max_perplexity_ratio,
        )  # fmt: skip
    if prompts is not None and args.n_samples is None:  # a file: one sample per prompt, as the page's batch
        return SteeringBatchEvaluation(vector.at_layers([args.layer]), args.layer, args.coefficient, prompts, **common)
    n_samples = {} if args.n_samples is None else {"n_samples": args.n_samples}
    return SteeringEvaluation(vector.at_layers([args.layer]), args.layer, args.coefficient, **common, **given, **n_samples)


def _run(args: argparse.Namespace, step) -> int:
    from interp import load_model
    from interp.__main__ import check_ray_options
    from interp.errors import InputError
    from interp.outputs import check_output, write_outputs
    from interp.spreadsheet import to_csv_bytes
    from steering.runs import SteeringSweep, batch_summary
    from steering.scores import SCORERS
    from steering.vector import load_vector

    check_ray_options(args)
    step.now = f"reading {args.vector}"
    try:
        vector_bytes = args.vector.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read the vector file {args.vector}: {exc.strerror or exc}.") from None
    inputs = [path.resolve() for path in (args.vector, args.prompts) if path is not None]
    if args.out.resolve() in inputs:
        raise InputError(f"The results CSV (--out) {args.out} is one of the input files: give it a name of its own.")
    check_output(args.out, "results CSV (--out)")  # before the run: a bad --out must not lose the run
    step.now = f"loading the model {args.model or '(embedded)'}"
    model = load_model(args.model, progress=lambda f, m: print(f"[model] {m}", file=sys.stderr))
    step.now = f"reading {args.vector}"
    spec = _spec(args, model, load_vector(args.vector.name, vector_bytes, model))
    step.now = "sampling and scoring"
    show = lambda fraction, text: print(f"\r{text}", end="", file=sys.stderr, flush=True)  # noqa: E731
    if args.ray is None:
        result = spec.run(model, show)
    else:
        from interp.distributed import ModelSource
        from steering.distributed import evaluation_on_ray, sweep_on_ray

        on_ray = sweep_on_ray if isinstance(spec, SteeringSweep) else evaluation_on_ray
        say = lambda text: print(text, file=sys.stderr)  # noqa: E731
        source = ModelSource.of(args.model, model)
        result = on_ray(spec, source, address=args.ray, workers=args.ray_workers, progress=show, on_message=say)
    print(file=sys.stderr)
    step.now = f"writing {args.out}"
    write_outputs([(args.out, to_csv_bytes(result.to_frame()), "results CSV (--out)")])
    if isinstance(spec, SteeringSweep):
        best = result.recommended()
        advice = "no cell gains within the perplexity limit" if best is None else f"layer {best.layer}, × {best.coefficient:g}"
        print(f"{len(result.cells)} cells; recommended: {advice}", file=sys.stderr)
    else:
        print(batch_summary(result, SCORERS[args.scorer].unit), file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _search_vector(args: argparse.Namespace, model):
    from interp.errors import InputError
    from steering.datasets import BUILT_IN, built_in, read_pairs
    from steering.make import mean_difference
    from steering.vector import load_vector

    if args.vector is not None:
        try:
            data = args.vector.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read the vector file {args.vector}: {exc.strerror or exc}.") from None
        return load_vector(args.vector.name, data, model)
    if not args.layers:
        raise InputError("--pairs makes the vector here: say at which layers with --layers, e.g. --layers 3,4,5.")
    if args.pairs in BUILT_IN:
        pairs = built_in(args.pairs)
    else:
        path = Path(args.pairs)
        try:
            pairs = read_pairs(path.name, path.read_bytes())
        except OSError as exc:
            raise InputError(
                f"--pairs {args.pairs!r} is neither a built-in set ({', '.join(BUILT_IN)}) nor a readable file: "
                f"{exc.strerror or exc}."
            ) from None
    return mean_difference(model, pairs, list(args.layers), position=args.position)


def describe_search(result) -> str:
    """The lines ``search`` prints: per direction, the chosen setting, its search and held-out figures."""
    lines = [
        f"{len(result.search_prompts)} search prompts, {len(result.held_out_prompts)} held out; scorer {result.scorer}; "
        f"perplexity limit ×{result.max_perplexity_ratio:g}; {result.seconds:.0f} s"
    ]
    for found in result.searches:
        head = f"{found.direction}: {len(found.trials)} trials, {len(found.front)} on the front"
        if found.chosen is None:
            lines.append(f"{head}; no trial gains within the limits")
            continue
        chosen, held = found.chosen, found.held_out
        effects = held.reliability
        low, high = effects.gain_interval
        lines.append(
            f"{head}; chosen trial {chosen.number}: {chosen.describe()} (search gain {chosen.gain:+.3f}, "
            f"perplexity ×{chosen.perplexity_ratio:.2f})\n"
            f"  held out: gain {held.gain:+.3f} [{low:+.3f}, {high:+.3f}] toward {found.direction}, "
            f"perplexity ×{held.perplexity_ratio:.2f}, KL {held.kl.mean:.3f} nats, distinct-2 {held.distinct2:.2f} "
            f"(unsteered {held.baseline_distinct2:.2f}), {effects.anti_steerable_fraction:.0%} of prompts the wrong way"
        )
    return "\n".join(lines)


def _search(args: argparse.Namespace, step) -> int:
    from interp import load_model
    from interp.errors import InputError
    from interp.outputs import check_output, write_outputs
    from interp.spreadsheet import to_csv_bytes
    from steering.search import SteeringSearch

    if args.out is not None:
        inputs = [Path(p).resolve() for p in (args.vector, args.prompts, args.journal) if p is not None]
        if args.out.resolve() in inputs:
            raise InputError(f"The trials CSV (--out) {args.out} is one of the input files: give it a name of its own.")
        check_output(args.out, "trials CSV (--out)")
    step.now = f"loading the model {args.model or '(embedded)'}"
    model = load_model(args.model, progress=lambda f, m: print(f"[model] {m}", file=sys.stderr))
    step.now = "making the vector" if args.vector is None else f"reading {args.vector}"
    vector = _search_vector(args, model)
    prompts = _prompts(args, model)
    spec = SteeringSearch(
        vector, layers=args.layers or (), coefficient_range=args.coefficients, angle_range=args.angles, modes=args.modes,
        scorer=args.scorer, **({} if prompts is None else {"prompts": prompts}), held_out_fraction=args.held_out_fraction,
        n_trials=args.n_trials, directions=args.directions, max_perplexity_ratio=args.max_perplexity_ratio,
        n_samples=args.n_samples, held_out_samples=args.held_out_samples, max_new_tokens=args.max_new_tokens,
        temperature=args.temperature, seed=args.seed, storage_path=None if args.journal is None else str(args.journal),
    )  # fmt: skip
    step.now = "searching"
    result = spec.run(model, lambda fraction, text: print(f"\r{text}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    print(describe_search(result))
    if args.out is not None:
        step.now = f"writing {args.out}"
        write_outputs([(args.out, to_csv_bytes(result.to_frame()), "trials CSV (--out)")])
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The same error boundary as ``python -m interp``: a user error exits 2 with its message, anything else 1."""
    from interp.__main__ import run_command

    args = _parser().parse_args(argv)
    return run_command(_search if args.command == "search" else _run, args)


if __name__ == "__main__":
    sys.exit(main())
