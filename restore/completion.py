"""``restore completion bash|zsh|tcsh``: a shell completion script for every command, flag and
choice, and the model names of the manifest wherever a command takes weights (shtab writes the
script from the parser itself, so it never falls behind the commands).

    restore completion bash > ~/.local/share/bash-completion/completions/restore
    restore completion zsh > "${fpath[1]}/_restore"
"""
from __future__ import annotations

import argparse
import re
import sys

SHELLS = ("bash", "zsh", "tcsh")
# Options and positionals that name a model of the manifest (or a file, a run folder): --weights of
# every command (restore upscale's too), restore faces' --bg-weights and --bg-upscaler, restore
# upscale's --face-weights, restore train's --init-weights, restore export's source, restore weights' names.
MODEL_DESTS = {"weights", "bg_weights", "bg_upscaler", "face_weights", "init_weights", "source", "names"}


def add_parser(sub, root: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = sub.add_parser("completion", help="print a shell completion script (commands, flags, model names)")
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(root=root)
    return p


def _model_names() -> list[str]:
    from restore.models.manifest import manifest

    return [n for n in manifest() if re.fullmatch(r"[A-Za-z0-9._-]+", n)]


def script(root: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``root`` for ``shell``."""
    import shtab

    names = " ".join(_model_names())
    complete = {"bash": "_restore_models", "zsh": f"_alternative 'models:model:({names})' 'files:file:_files'",
                "tcsh": "f:*"}
    preamble = {"bash": "_restore_models() {\n  compgen -W \"" + names + "\" -- \"$1\"\n  compgen -f -- \"$1\"\n}\n"}

    def mark(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:  # argparse keeps them here; shtab reads the same list
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    mark(child)
            elif action.dest in MODEL_DESTS:
                action.complete = complete  # type: ignore[attr-defined]  (shtab's convention)

    mark(root)
    return shtab.complete(root, shell=shell, preamble=preamble)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.root, args.shell))
    return 0
