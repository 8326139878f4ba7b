"""``--skip-existing`` with inputs of several outputs (issue 34): an input is finished only when
*all* its outputs exist. One of two outputs deleted, that input is redone, not skipped; in
``run_batch`` (``--no-pipeline``), in the pipeline and the Ray driver's planning
(``plan_outputs``), and through ``restore segment``, which writes a mask and an overlay."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan import UNet, save_model, segmenter_config
from restore.cli import main
from restore.imagewrite import write_png
from restore.runners.outputs import plan_outputs
from restore.runners.pipeline import run_pipeline
from restore.runners.report import BatchReport
from restore.runners.sequential import run_batch


class TwoOutputs:
    """A stand-in command: OUT/<stem>_a.png and OUT/<stem>_b.png per input."""

    def __init__(self, out: Path):
        self.out = out
        self.calls: list[str] = []

    def outputs(self, file: Path, rel: Path) -> list[Path]:
        return [self.out / rel / f"{file.stem}_a.png", self.out / rel / f"{file.stem}_b.png"]

    def __call__(self, file: Path, rel: Path) -> None:
        self.calls.append(file.name)
        for k, path in enumerate(self.outputs(file, rel)):
            write_png(path, np.full((2, 2), k, np.uint8))


def items_of(tmp_path: Path, n: int = 3) -> list[tuple[Path, Path]]:
    return [(tmp_path / f"{i}.png", Path(".")) for i in range(n)]


@pytest.mark.parametrize("gone", ["_a", "_b"])
def test_run_batch_redoes_an_input_with_one_of_its_outputs_gone(tmp_path, gone):
    items = items_of(tmp_path)
    first = TwoOutputs(tmp_path / "out")
    assert run_batch(items, first, first.outputs, quiet=True).done == 3
    (tmp_path / "out" / f"1{gone}.png").unlink()
    again = TwoOutputs(tmp_path / "out")
    report = run_batch(items, again, again.outputs, skip_existing=True, quiet=True)
    assert again.calls == ["1.png"] and (report.done, report.skipped) == (1, 2)
    assert (tmp_path / "out" / f"1{gone}.png").is_file()


@pytest.mark.parametrize("gone", ["_a", "_b"])
def test_plan_outputs_plans_an_input_with_one_of_its_outputs_gone(tmp_path, gone):
    """The pipeline's and the Ray driver's planning of a resume."""
    items = items_of(tmp_path)
    cmd = TwoOutputs(tmp_path / "out")
    for file, rel in items[1:]:  # 0 never done; 1 and 2 done
        cmd(file, rel)
    (tmp_path / "out" / f"1{gone}.png").unlink()
    report, failed = BatchReport(), []
    todo = plan_outputs(items, cmd.outputs, True, report, lambda f, reason, e: failed.append(f))
    assert [t[0].name for t in todo] == ["0.png", "1.png"] and report.skipped == 1 and failed == []
    assert todo[1][2] == cmd.outputs(*items[1])  # its outputs, both claimed
    # without skip_existing nothing is skipped
    assert len(plan_outputs(items, cmd.outputs, False, BatchReport(), lambda *a: None)) == 3


def test_run_pipeline_redoes_an_input_with_one_of_its_outputs_gone(tmp_path):
    items = items_of(tmp_path)
    cmd = TwoOutputs(tmp_path / "out")
    for file, rel in items:
        cmd(file, rel)
    (tmp_path / "out" / "2_b.png").unlink()
    cmd.calls.clear()
    report = run_pipeline(items, cmd.outputs, lambda f, r: f, lambda values: values,
                          lambda f, r, value: cmd(f, r), skip_existing=True, quiet=True)
    assert cmd.calls == ["2.png"] and (report.done, report.skipped) == (1, 2)


@pytest.fixture(scope="module")
def seg_weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    return str(save_model(UNet(segmenter_config("tiny")), path, {"diameter": 0}))


@pytest.mark.parametrize("runner", ["--no-pipeline", "pipeline"])
def test_segment_skip_existing_redoes_an_input_whose_overlay_is_gone(tmp_path, capsys, seg_weights, runner):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("x", "y"):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(src / f"{name}.png")
    out = tmp_path / "out"
    args = ["segment", str(src), "-o", str(out), "--weights", seg_weights, "--tile", "32"]
    args += [runner] if runner.startswith("--") else []
    assert main(args + ["--quiet"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["x_mask.png", "x_overlay.png", "y_mask.png", "y_overlay.png"]
    overlay = (out / "x_overlay.png").read_bytes()
    (out / "x_overlay.png").unlink()  # x half done: its mask is there, its overlay not
    kept = {name: (out / name).stat().st_mtime_ns for name in ("x_mask.png", "y_mask.png", "y_overlay.png")}
    capsys.readouterr()
    assert main(args + ["--skip-existing"]) == 0
    assert "segment: done 1, skipped 1, failed 0, ignored 0" in capsys.readouterr().err
    assert (out / "x_overlay.png").read_bytes() == overlay  # x redone
    assert (out / "x_mask.png").stat().st_mtime_ns != kept["x_mask.png"]  # its mask rewritten too
    assert {n: (out / n).stat().st_mtime_ns for n in ("y_mask.png", "y_overlay.png")} == \
        {n: kept[n] for n in ("y_mask.png", "y_overlay.png")}  # y skipped
