"""Steerscope from the command line: batch jobs without the browser.

    python -m interp attribute prompts.csv --method shap --out results.csv
    python -m interp attribute prompts.csv --method shap --out results.csv --ray auto   # fanned out over Ray

Progress goes to stderr; results to the files named (each checked before the batch starts, and written
whole or not at all: a temporary file renamed into place). Ctrl-C stops the batch and still writes the
rows already done. Exit status: 0 done, 1 stopped early, some rows failed or an unexpected error,
2 bad input (the message says what to fix), 130 stopped before any result.

No error ends as a traceback: an unexpected one prints one line saying what failed and where its
traceback was written (``logs/`` in the data folder); ``--debug`` prints the traceback instead.

The command builds the same :class:`~interp.attribution_batch.BatchAttribution` spec the page does
and runs it, so the numbers are the page's. Each method option (``--max-evals``, ``--n-steps``, ...)
comes from the method classes, so a new method's options appear here by themselves.

``--ray auto|ADDRESS`` runs the rows on Ray workers (:mod:`interp.distributed`), each loading the model
from ``--model``; the output is the in-process run's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """``--ray auto|ADDRESS`` and ``--ray-workers N``: the same options for every batch command."""
    from interp.distributed import RAY_HELP

    parser.add_argument("--ray", metavar="auto|ADDRESS", help=RAY_HELP)
    parser.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers, each loading the model (default: one per CPU)")


def check_ray_options(args: argparse.Namespace) -> None:
    """The Ray options make sense together (checked before the model loads)."""
    from interp.distributed import check_ray_address
    from interp.errors import InputError

    if args.ray is not None:
        check_ray_address(args.ray)
    if args.ray_workers is not None:
        if args.ray is None:
            raise InputError("--ray-workers needs --ray (auto or a cluster address).")
        if args.ray_workers < 1:
            raise InputError(f"--ray-workers must be at least 1, not {args.ray_workers}.")


def _parser() -> argparse.ArgumentParser:
    from interp.attribution import METHODS
    from interp.attribution_batch import BatchAttribution

    names = ", ".join(f"{name} ({', '.join(m.aliases)})" if m.aliases else name for name, m in METHODS.items())
    parser = argparse.ArgumentParser(prog="python -m interp", description="Steerscope batch jobs.")
    debug_help = "print the traceback of an unexpected error instead of writing it to a log file"
    parser.add_argument("--debug", action="store_true", help=debug_help)
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
    add_ray_options(attr)
    attr.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


class _Step:
    """What the command is doing, for the one-line message if it fails unexpectedly."""

    now = "reading the options"


def _attribute(args: argparse.Namespace, step: _Step) -> int:
    from interp import load_model
    from interp.attribution import METHODS, method_of
    from interp.attribution_batch import BatchAttribution, batch_frame, batch_json
    from interp.errors import InputError
    from interp.outputs import write_outputs
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
    check_ray_options(args)
    if not args.file.is_file():
        raise InputError(f"No file at {args.file}.")
    step.now = f"reading {args.file}"
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read {args.file}: {exc.strerror or exc}.") from None
    read_prompt_file(args.file.name, data)  # a malformed file is reported before the model loads, not after
    outputs = [(args.out, "results CSV (--out)"), *([(args.json, "results JSON (--json)")] if args.json else [])]
    _check_outputs(args.file, outputs)  # before the batch: a bad --out must not lose an hour of results
    step.now = f"loading the model {args.model or '(embedded)'}"
    model = load_model(args.model, progress=lambda f, m: print(f"[model] {m}", file=sys.stderr))
    step.now = f"reading {args.file}"
    prompts = read_prompt_file(args.file.name, data, count_tokens=lambda p: len(tokenize(model, p)))
    print(prompts.summary(), file=sys.stderr)
    for skipped in prompts.skipped:
        print(f"  skipped line {skipped.line}: {skipped.reason}", file=sys.stderr)
    spec = BatchAttribution(prompts.rows, tuple(methods), args.budget, args.seed, with_faithfulness=not args.no_faithfulness)
    done: list = []
    stopped = False
    step.now = "attributing the prompts"
    show = lambda fraction, text: print(f"\r{text}", end="", file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.ray is None:
            result = spec.run(model, show, on_item=done.append)
        else:
            from interp.distributed import ModelSource, attribute_on_ray

            source = ModelSource.of(args.model, model)
            say = lambda text: print(text, file=sys.stderr)  # noqa: E731
            result = attribute_on_ray(
                spec, source, address=args.ray, workers=args.ray_workers, progress=show, on_item=done.append, on_message=say
            )
        stopped = result.stopped
    except KeyboardInterrupt:
        stopped = True  # keep the rows already done
    # Ray workers finish chunks in any order; the file keeps the prompt file's order, as in-process.
    order = {(row.line, method.name): i for i, (row, method) in enumerate((r, m) for r in spec.rows for m in spec.methods)}
    items = tuple(sorted(done, key=lambda item: order[(item.line, item.method)]))
    print(file=sys.stderr)
    step.now = f"writing {args.out}"
    contents = [to_csv_bytes(batch_frame(items)), *([batch_json(items).encode("utf-8")] if args.json else [])]
    write_outputs([(path, content, what) for (path, what), content in zip(outputs, contents, strict=True)])
    failed = [item for item in items if item.error]
    for item in failed:
        print(f"  line {item.line} ({item.method}): {item.error}", file=sys.stderr)
    print(f"wrote {len(items) - len(failed)} result(s) to {args.out}", file=sys.stderr)
    return 1 if stopped or failed else 0


def _check_outputs(source: Path, outputs: list[tuple[Path, str]]) -> None:
    """Each output can be written, and none is the prompt file or another output."""
    from interp.errors import InputError
    from interp.outputs import check_output

    seen = {source.resolve(): "the prompt file"}
    for path, what in outputs:
        if path.resolve() in seen:
            raise InputError(f"The {what} {path} is {seen[path.resolve()]}: give it a name of its own.")
        seen[path.resolve()] = f"also the {what}"
        check_output(path, what)


def _log_folder() -> Path:
    try:
        from interp.records.record import data_folder

        return data_folder() / "logs"
    except Exception:  # the log must not fail for the reason the command did
        return Path(tempfile.gettempdir())


def _write_traceback(exc: BaseException) -> Path | None:
    """The traceback in a new file under the data folder's logs/ (or the temp folder); None if neither is writable."""
    name = f"cli-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    for folder in (_log_folder(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(f"python -m interp {' '.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(exc)))
            return path
        except OSError:
            continue
    return None


def _unexpected(exc: BaseException, step: _Step, debug: bool) -> str:
    """One line for an error that is not the user's: what failed, the exception, and where the traceback is."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
        return f"error: {step.now} failed unexpectedly ({text})."
    path = _write_traceback(exc)
    where = f"the traceback is in {path}" if path else "the traceback could not be written"
    return f"error: {step.now} failed unexpectedly ({text}); {where} (or run again with --debug)."


def run_command(command: Callable[[argparse.Namespace, _Step], int], args: argparse.Namespace) -> int:
    """Every command line's one error boundary (``python -m interp``, ``python -m steering``): a user error exits 2
    with its message, Ctrl-C 130 with the step it stopped, anything else 1 with one line."""
    from interp.errors import SteerscopeError

    step = _Step()
    try:
        return command(args, step)
    except SteerscopeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nstopped (Ctrl-C) while {step.now}.", file=sys.stderr)
        return 130
    except Exception as exc:
        print(_unexpected(exc, step, args.debug), file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    return run_command(_attribute, _parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
