"""``restore --help``, every ``restore SUB --help`` and every usage error answer without importing
torch or torchvision (they take seconds to load): checked in a fresh interpreter each, through
``sys.modules``. And the choices the trainers' parsers name without importing their tables are
those tables' keys."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import ROOT

HEAVY = ("torch", "torchvision", "cv2", "basicsr", "facexlib", "onnxruntime", "ray", "gradio")
PROBE = """
import contextlib, io, json, sys
from restore.cli import build_parser
parser = build_parser()
err = io.StringIO()
code = None
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(err):
    try:
        parser.parse_args(sys.argv[1:])
    except SystemExit as e:
        code = e.code
print(json.dumps({"code": code, "out": out.getvalue(), "err": err.getvalue(),
                  "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(%r))}))
""" % (HEAVY,)

HELPS = [[], ["segment"], ["faces"], ["translate"], ["upscale"], ["sketch"], ["eval"], ["eval", "segment"], ["weights"],
         ["weights", "list"], ["weights", "fetch"], ["weights", "import"], ["weights", "verify"], ["app"], ["export"],
         ["train"], ["train", "pix2pix"], ["train", "colorizer"], ["train", "gfpgan"], ["train", "segmenter"],
         ["train", "translate"], ["train", "sketch"], ["train", "faces"], ["train", "segment"]]
USAGE_ERRORS = [["segment"], ["faces", "x"], ["translate", "x", "-o", "o"], ["sketch", "x", "-o", "o", "--regions", "maybe"],
                ["train", "pix2pix", "--data", "d", "--out", "o", "--preset", "huge"],
                ["train", "gfpgan", "--data", "d", "--out", "o", "--degrade", "nope"],
                ["train", "segmenter", "--data", "d", "--out", "o", "--loss", "l2"], ["nosuchcommand"],
                ["segment", "x", "-o", "o", "--precision", "fp64"], ["weights", "fetch"],
                ["upscale", "x", "-o", "o", "--alpha-upsampler", "nope"]]


def probe(argv: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("argv", HELPS, ids=lambda a: " ".join(a) or "restore")
def test_help_imports_no_torch(argv):
    got = probe([*argv, "--help"])
    assert got["code"] == 0 and got["out"].startswith("usage: restore"), got
    assert got["heavy"] == [], f"restore {' '.join(argv)} --help imported {got['heavy']}"


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_import_no_torch(argv):
    got = probe(argv)
    assert got["code"] == 2 and "error:" in got["err"], got
    assert got["heavy"] == [], f"restore {' '.join(argv)} imported {got['heavy']}"


def test_the_trainers_choices_are_their_tables():
    from gan.data.degrade import DEGRADE_PRESETS
    from gan.losses.adversarial import GAN_KINDS
    from gan.losses.segmentation import SEG_LOSSES
    from gan.presets import GFPGAN_TRAIN_PRESETS, PIX2PIX_PRESETS
    from restore.train import cli

    assert cli.DEGRADE_NAMES == tuple(sorted(DEGRADE_PRESETS))
    assert cli.PIX2PIX_PRESET_NAMES == tuple(PIX2PIX_PRESETS)
    assert cli.GFPGAN_PRESET_NAMES == tuple(sorted(GFPGAN_TRAIN_PRESETS))
    assert cli.GAN_LOSSES == GAN_KINDS and cli.SEG_LOSS_NAMES == tuple(SEG_LOSSES)


def complete_bash(script: str, line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end) with ``script`` sourced."""
    words = line.split(" ")
    run = (f'source "$1"; COMP_WORDS=({" ".join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; '
           f'COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; _shtab_restore; printf "%s\\n" "${{COMPREPLY[@]}}"')
    done = subprocess.run(["bash", "-c", run, "bash", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completion_offers_commands_flags_and_model_names(tmp_path):
    made = subprocess.run([sys.executable, "-m", "restore", "completion", "bash"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    script = tmp_path / "restore.bash"
    script.write_text(made.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # a script bash can read
    assert {"train", "translate"} <= set(complete_bash(str(script), "restore tr"))
    assert "--skip-existing" in complete_bash(str(script), "restore faces --sk")
    assert {"gfpgan-v1.3", "gfpgan-v1.4"} <= set(complete_bash(str(script), "restore faces --weights gfp"))
    assert "nuclei" in complete_bash(str(script), "restore segment --weights nuc")
    assert {"restorer-wide", "tiny-restorer"} <= set(complete_bash(str(script), "restore train pix2pix --preset "))
