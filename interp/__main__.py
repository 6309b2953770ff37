"""Steerscope from the command line: batch jobs without the browser.

    python -m interp attribute prompts.csv --method shap --out results.csv

Progress goes to stderr; results to the files named. Ctrl-C stops the batch and still writes the
rows already done. Exit status: 0 done, 1 stopped early or some rows failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

METHOD_ALIASES = {"ig": "integrated_gradients", "ablation": "feature_ablation", "occlusion": "feature_ablation",
                  "svs": "shapley_sampling", "gxi": "gradient_x_input"}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    from interp.attribution import DEFAULT_BUDGET, METHODS

    parser = argparse.ArgumentParser(prog="python -m interp", description="Steerscope batch jobs.")
    commands = parser.add_subparsers(dest="command", required=True)
    attr = commands.add_parser("attribute", help="attribute every prompt in a CSV/TSV/TXT/JSONL file")
    attr.add_argument("file", type=Path, help="prompt file with a 'prompt' column (optional 'target', 'continuation')")
    attr.add_argument(
        "--method",
        action="append",
        required=True,
        help=f"one of {', '.join(METHODS)} (or ig, ablation, svs, gxi); repeat for several",
    )
    attr.add_argument("--out", type=Path, required=True, help="results CSV (spreadsheet-safe)")
    attr.add_argument("--json", type=Path, help="also write the full results as JSON")
    attr.add_argument("--model", default=None, help="checkpoint folder, .gguf file or cached hub id (default: embedded SmolLM2)")
    attr.add_argument("--budget", type=int, default=DEFAULT_BUDGET, help="max model evaluations per run")
    attr.add_argument("--seed", type=int, default=0)
    attr.add_argument("--max-evals", type=int, help="SHAP: model evaluations per prompt")
    attr.add_argument("--n-steps", type=int, help="Integrated Gradients: path steps")
    attr.add_argument("--n-samples", type=int, help="Shapley value sampling: permutations")
    attr.add_argument("--no-faithfulness", action="store_true", help="skip the deletion/insertion check")
    return parser


def _attribute(args: argparse.Namespace) -> int:
    from interp import load_model
    from interp.attribution import METHODS
    from interp.attribution_batch import batch_frame, batch_json, run_attribution_batch
    from interp.errors import InputError
    from interp.spreadsheet import to_csv_bytes
    from interp.prompt_files import read_prompt_file
    from interp.tokens import tokenize

    methods = [METHOD_ALIASES.get(m, m) for m in args.method]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"Unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}.")
    if not args.file.is_file():
        raise InputError(f"No file at {args.file}.")
    model = load_model(args.model, progress=lambda f, m: print(f"[model] {m}", file=sys.stderr))
    prompts = read_prompt_file(args.file.name, args.file.read_bytes(), count_tokens=lambda p: len(tokenize(model, p)))
    print(prompts.summary(), file=sys.stderr)
    for skipped in prompts.skipped:
        print(f"  skipped line {skipped.line}: {skipped.reason}", file=sys.stderr)
    settings = {
        "shap": {"max_evals": args.max_evals},
        "integrated_gradients": {"n_steps": args.n_steps},
        "shapley_sampling": {"n_samples": args.n_samples},
    }
    settings = {method: {k: v for k, v in opts.items() if v is not None} for method, opts in settings.items()}
    done: list = []
    stopped = False
    try:
        result = run_attribution_batch(
            model,
            prompts,
            methods,
            settings=settings,
            budget=args.budget,
            seed=args.seed,
            with_faithfulness=not args.no_faithfulness,
            on_item=done.append,
            on_progress=lambda p: print(f"\r{p.describe()}", end="", file=sys.stderr, flush=True),
        )
        stopped = result.stopped
    except KeyboardInterrupt:
        stopped = True  # keep the rows already done
    items = tuple(done)
    print(file=sys.stderr)
    frame = batch_frame(items)
    args.out.write_bytes(to_csv_bytes(frame))
    if args.json:
        args.json.write_text(batch_json(items), encoding="utf-8")
    failed = [item for item in items if item.error]
    for item in failed:
        print(f"  line {item.line} ({item.method}): {item.error}", file=sys.stderr)
    print(f"wrote {len(items) - len(failed)} result(s) to {args.out}", file=sys.stderr)
    return 1 if stopped or failed else 0


def main(argv: list[str] | None = None) -> int:
    from interp.errors import SteerscopeError

    args = _parser().parse_args(argv)
    try:
        return _attribute(args)
    except SteerscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
