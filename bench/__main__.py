"""`python -m bench [--quick] [section ...]`: run benchmark sections and print markdown."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time

import interp  # noqa: F401  (before torch: it sets the OpenMP defaults, which libgomp reads once when torch loads)

SECTIONS = ["foundation", "attention", "attribution", "circuits", "steering", "rlhf", "engine", "serve", "contention"]
SECTIONS += ["llama", "steering_search", "features", "feature_steering", "edges", "compression"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="default: all")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    args = parser.parse_args(argv)
    import torch

    torch.manual_seed(0)
    print(
        f"<!-- {time.strftime('%Y-%m-%d')} · {platform.processor() or platform.machine()} · "
        f"{torch.get_num_threads()} threads · torch {torch.__version__} -->\n"
    )
    for name in args.sections or SECTIONS:
        module = importlib.import_module(f"bench.{name}")
        print(module.run(quick=args.quick), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
