"""``restore.runners.choose.run_job``: segment, translate and sketch, pipelined (the default) and
one input after another (``--no-pipeline``), write the same bytes and the same lines."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from restore.cli import main
from tests import ROOT
from tests.restore.faces.test_pipeline import outputs_of


def command_folder(command: str, src) -> list[str]:
    src.mkdir()
    if command == "segment":
        for name in ("dsb2018_heldout.png", "scratch_assay_unseen.png"):
            shutil.copy(ROOT / "examples" / "nuclei" / name, src / name)
        return ["segment", str(src), "--instances"]
    if command == "translate":
        rng = np.random.default_rng(0)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (40 + 8 * k, 48, 3), dtype=np.uint8)).save(src / f"{k}.png")
        return ["translate", str(src), "--weights", "restorer", "--tile", "32"]
    for name in ("monkey_lineart.png", "dog.png"):
        shutil.copy(ROOT / "examples" / "sketch" / name, src / name)
    return ["sketch", str(src), "--style", str(ROOT / "examples" / "sketch" / "monkey.png"), "--max-side", "96"]


@pytest.mark.parametrize("command", ["segment", "translate", "sketch"])
def test_pipeline_and_one_at_a_time_write_the_same(tmp_path, capsys, command):
    args = command_folder(command, tmp_path / "in")
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    lines = {}
    for mode in ("pipe", "one"):
        extra = ["--no-pipeline"] if mode == "one" else []
        assert main(args + ["-o", str(tmp_path / mode)] + extra) == 1
        lines[mode] = [ln.replace(str(tmp_path / mode), "OUT") for ln in capsys.readouterr().err.splitlines()]
    a, b = outputs_of(tmp_path / "pipe"), outputs_of(tmp_path / "one")
    assert len(a) >= 3 and a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    assert lines["pipe"] == lines["one"]
    assert sum(ln.startswith("error: ") for ln in lines["pipe"]) == 1
    assert sum(ln.startswith("ignored: ") for ln in lines["pipe"]) == 1
    # resume: everything done is skipped, in both
    assert main(args + ["-o", str(tmp_path / "pipe"), "--skip-existing"]) == 1
    assert ", skipped " + str(len(a) // (1 if command == "translate" else 2)) in capsys.readouterr().err
