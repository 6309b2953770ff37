"""Steerscope from the command line: batch jobs without the browser.

    python -m interp attribute prompts.csv --method shap --out results.csv

Progress goes to stderr; results to the files named. Ctrl-C stops the batch and still writes the
rows already done. Exit status: 0 done, 1 stopped early or some rows failed, 2 bad input.

The command builds the same :class:`~interp.attribution_batch.BatchAttribution` spec the page does
and runs it, so the numbers are the page's. Each method option (``--max-evals``, ``--n-steps``, ...)
comes from the method classes, so a new method's options appear here by themselves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from interp.attribution import METHODS
    from interp.attribution_batch import BatchAttribution

    names = ", ".join(f"{name} ({', '.join(m.aliases)})" if m.aliases else name for name, m in METHODS.items())
    parser = argparse.ArgumentParser(prog="python -m interp", description="Steerscope batch jobs.")
    commands = parser.add_subparsers(dest="command", required=True)
    attr = commands.add_parser("attribute", help="attribute every prompt in a CSV/TSV/TXT/JSONL file")
    attr.add_argument("file", type=Path, help="prompt file with a 'prompt' column (optional 'target', 'continuation')")
    attr.add_argument("--method", action="append", required=True, help=f"one of {names}; repeat for several")
    attr.add_argument("--out", type=Path, required=True, help="results CSV (spreadsheet-safe)")
    attr.add_argument("--json", type=Path, help="also write the full results as JSON")
    attr.add_argument("--model", default=None, help="checkpoint folder, .gguf file or cached hub id (default: embedded SmolLM2)")
    attr.add_argument("--budget", type=int, default=BatchAttribution.default("budget"), help="max model evaluations per run")
    attr.add_argument("--seed", type=int, default=BatchAttribution.default("seed"))
    seen: set[str] = set()
    for method in METHODS.values():
        for option in method.options():
            if option.name not in seen:
                seen.add(option.name)
                flag = "--" + option.name.replace("_", "-")
                attr.add_argument(flag, type=int, help=f"{option.label} (default {option.default})")
    attr.add_argument("--no-faithfulness", action="store_true", help="skip the deletion/insertion check")
    return parser


def _attribute(args: argparse.Namespace) -> int:
    from interp import load_model
    from interp.attribution import METHODS, method_of
    from interp.attribution_batch import BatchAttribution, batch_frame, batch_json
    from interp.errors import InputError
    from interp.prompt_files import read_prompt_file
    from interp.spreadsheet import to_csv_bytes
    from interp.tokens import tokenize

    methods = []
    for name in args.method:
        try:
            method = method_of(name)
        except InputError:
            raise InputError(f"Unknown method {name!r}; choose from {', '.join(METHODS)}.") from None
        methods.append(method_of(method, {o.name: getattr(args, o.name) for o in method.options()}))
    if not args.file.is_file():
        raise InputError(f"No file at {args.file}.")
    model = load_model(args.model, progress=lambda f, m: print(f"[model] {m}", file=sys.stderr))
    prompts = read_prompt_file(args.file.name, args.file.read_bytes(), count_tokens=lambda p: len(tokenize(model, p)))
    print(prompts.summary(), file=sys.stderr)
    for skipped in prompts.skipped:
        print(f"  skipped line {skipped.line}: {skipped.reason}", file=sys.stderr)
    spec = BatchAttribution(prompts.rows, tuple(methods), args.budget, args.seed, with_faithfulness=not args.no_faithfulness)
    done: list = []
    stopped = False
    try:
        result = spec.run(
            model, lambda fraction, text: print(f"\r{text}", end="", file=sys.stderr, flush=True), on_item=done.append
        )
        stopped = result.stopped
    except KeyboardInterrupt:
        stopped = True  # keep the rows already done
    items = tuple(done)
    print(file=sys.stderr)
    args.out.write_bytes(to_csv_bytes(batch_frame(items)))
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
