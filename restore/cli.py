"""The ``restore`` command: the subcommands of every task, assembled. Exit status: 0 all done,
1 some inputs failed (or training diverged), 2 usage error.

Each subcommand is an ``add_parser(subparsers)`` and a ``run(args) -> int`` in its task's
package; this module only registers them (``set_defaults(run=...)``) and maps the errors a
user can cause to one line and exit status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from gan.train import TrainingDiverged
from restore import completion, serve
from restore.export import cli as export
from restore.faces import cli as faces
from restore.models import cli as weights
from restore.segment import cli as segment
from restore.sketch import cli as sketch
from restore.train import cli as train_cli
from restore.translate import cli as translate
from restore.upscale import cli as upscale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="restore", description="U-Net image restoration and segmentation toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    segment.add_parser(sub).set_defaults(run=segment.run)
    train = sub.add_parser("train", help="train a network")
    tsub = train.add_subparsers(dest="what", required=True)
    train_cli.add_parsers(tsub)
    translate.add_parser(sub).set_defaults(run=translate.run)
    upscale.add_parser(sub).set_defaults(run=upscale.run)
    faces.add_parser(sub).set_defaults(run=faces.run)
    sketch.add_parser(sub).set_defaults(run=sketch.run)
    evaluate = sub.add_parser("eval", help="score predictions against ground truth")
    esub = evaluate.add_subparsers(dest="what", required=True)
    segment.add_eval_parser(esub).set_defaults(run=segment.run_eval)
    weights.add_parser(sub).set_defaults(run=weights.run)
    serve.add_parser(sub).set_defaults(run=serve.run)
    export.add_parser(sub).set_defaults(run=export.run)
    completion.add_parser(sub, root=parser).set_defaults(run=completion.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except TrainingDiverged as e:
        print(f"restore {args.command}: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:  # user errors (bad data folder, unreadable file): one line
        if os.environ.get("RESTORE_DEBUG"):
            raise
        from restore.runners.report import printable  # a file name can hold a newline: never a forged line

        print(f"restore {args.command}: error: {printable(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
