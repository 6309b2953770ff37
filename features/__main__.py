"""Command line: train a TopK SAE and write it as a folder (sparsify's layout with Steerscope's card).

    python -m features train --out my-sae --hook blocks.9.hook_resid_pre --width 4096 --k 32 --tokens 2000000 \
        --checkpoint my-sae-training            # Ctrl-C keeps the checkpoint; the same command continues it
    python -m features show my-sae              # the card: data, tokens, metrics
"""

from __future__ import annotations

import argparse
import json
import sys

from interp.errors import InputError


def _train(args: argparse.Namespace) -> int:
    from features.files import save_sae
    from features.runs import SAETraining
    from interp import load_model

    spec = SAETraining(
        hook_name=args.hook, d_sae=args.width, k=args.k, corpus=args.corpus, n_tokens=args.tokens,
        learning_rate=args.learning_rate, dead_after_tokens=args.dead_after, seed=args.seed, checkpoint=args.checkpoint,
    )  # fmt: skip
    model = load_model(args.model, device="cpu")
    last = [-1.0]

    def progress(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.01 or fraction >= 1.0:
            last[0] = fraction
            print(f"{100 * fraction:5.1f}% {message}", file=sys.stderr, flush=True)

    trained = spec.run(model, progress)
    card = trained.card() | {"seconds": trained.seconds, "settings": spec.settings()}
    save_sae(trained.sae, args.out, card)
    print(
        f"{trained.sae.describe()} -> {args.out}\n{trained.quality.describe()}\n{trained.tokens / trained.seconds:.0f} tokens/s"
    )
    return 0


def _index(args: argparse.Namespace) -> int:
    from features.activations import token_stream
    from features.corpus import load_corpus
    from features.dashboard import build_feature_index, save_index
    from features.files import load_sae
    from interp import load_model

    model = load_model(args.model, device="cpu")
    folder = load_sae(args.folder, d_model=model.info.d_model)
    corpus = load_corpus(args.corpus or folder.card.get("data", {}).get("corpus", "pydoc-topics"))
    stream = token_stream(model, corpus.documents, context_tokens=args.context_tokens, source=corpus.name)
    # spread over the whole text (every n-th context), so one long document does not fill the index
    step = max(1, stream.contexts.shape[0] // args.contexts)
    chosen = type(stream)(stream.contexts[::step][: args.contexts].clone(), stream.source)
    index = build_feature_index(model, folder.sae, chosen, progress=lambda f, m: print(f"{100 * f:5.1f}% {m}", file=sys.stderr))
    save_index(index, args.folder)
    alive = int((index.firing_counts > 0).sum())
    print(f"indexed {index.n_tokens:,} tokens of {corpus.name}: {alive} of {folder.sae.d_sae} features fire")
    return 0


def _show(args: argparse.Namespace) -> int:
    from features.files import load_sae

    loaded = load_sae(args.folder)
    print(loaded.sae.describe())
    print(json.dumps(dict(loaded.card), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m features", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a TopK SAE")
    train.add_argument("--out", required=True, help="folder to write the SAE to")
    train.add_argument("--model", default=None, help="model folder (default: the embedded SmolLM2-135M-Instruct)")
    train.add_argument("--hook", default="blocks.9.hook_resid_pre")
    train.add_argument("--width", type=int, default=4096)
    train.add_argument("--k", type=int, default=32)
    train.add_argument("--corpus", default="python-docs", help="python-docs or pydoc-topics")
    train.add_argument("--tokens", type=int, default=2_000_000)
    train.add_argument("--learning-rate", type=float, default=0.0, help="0: sparsify's width-scaled rate")
    train.add_argument("--dead-after", type=int, default=250_000, help="tokens without firing before a latent is dead")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint", default=None, help="folder for the resumable training state")
    train.set_defaults(handler=_train)
    index = commands.add_parser("index", help="build the dashboards' index of an SAE folder (its top contexts)")
    index.add_argument("folder")
    index.add_argument("--model", default=None)
    index.add_argument("--corpus", default=None, help="default: the text the SAE was trained on")
    index.add_argument("--contexts", type=int, default=1024)
    index.add_argument("--context-tokens", type=int, default=64)
    index.set_defaults(handler=_index)
    show = commands.add_parser("show", help="print an SAE folder's card")
    show.add_argument("folder")
    show.set_defaults(handler=_show)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stopped; the checkpoint (if any) keeps the training done so far", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
