"""``--ray`` (issue 14): the batch commands on a local Ray cluster write what the local run
writes, byte for byte, with one report entry per input; they resume with --skip-existing, and
a worker killed mid-job costs a retry, not a file."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from restore.cli import main
from tests import DATA, ROOT
from tests.restore.faces.test_pipeline import outputs_of, photo_folder, report_of


def faces_args(src: Path, weights: str) -> list[str]:
    return ["faces", str(src), "--weights", weights, "--tile", "64", "--precision", "fp32", "--batch-size", "3"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, weights):
    """The photos, and what the one-machine pipeline made of them."""
    root = tmp_path_factory.mktemp("faces")
    src = photo_folder(root / "in")
    os.environ["RESTORE_HOME"] = str(root / "cache")  # (module fixtures run before monkeypatch)
    assert main(faces_args(src, weights) + ["-o", str(root / "local"), "--quiet"]) == 1  # the broken file
    return src, root / "local"


def test_faces_on_ray_match_the_local_run(cluster, local_run, weights, tmp_path, capsys):
    src, local = local_run
    out = tmp_path / "ray"
    capsys.readouterr()  # (the local run's lines)
    assert main(faces_args(src, weights) + ["-o", str(out), "--ray", "--ray-workers", "2"]) == 1
    err = capsys.readouterr().err
    a, b = outputs_of(local), outputs_of(out)
    assert a.keys() == b.keys() and len(a) >= 7 + 6
    assert [k for k in a if a[k] != b[k]] == []  # byte for byte
    assert report_of(local) == report_of(out)  # one entry per input, the same faces, notes and errors
    assert len(report_of(out)) == 8
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [
        f"error: {src / 'g_broken.png'}: not an image file (or not a format Pillow or pillow-heif reads)"]
    assert "faces: done 7, skipped 0, failed 1, ignored 0" in err and "2 worker(s)" in err
    assert not list(out.rglob(".*.tmp"))

    # resume: one photo's output gone; only it is redone, the report keeps every entry
    (out / "restored" / "b.png").unlink()
    stale = out / "faces" / ".a_0.png.4489-73bf16f4.tmp"  # what a worker killed mid-write leaves: swept
    stale.write_bytes(b"half a PNG")
    assert main(faces_args(src, weights) + ["-o", str(out), "--ray", "--skip-existing"]) == 1
    assert not stale.exists() and not list(out.rglob(".*.tmp"))
    err = capsys.readouterr().err
    assert "faces: done 1, skipped 6, failed 1, ignored 0" in err
    assert outputs_of(out) == a and report_of(out) == report_of(local)


def actor_pids() -> list[int]:
    """The processes of the job's actors (Ray names them after the stage's class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"JobStage" in cmd:
                pids.append(int(entry.name))
    return pids


def test_a_killed_worker_costs_a_retry_not_a_file(cluster, local_run, weights, tmp_path):
    src, local = local_run
    many = tmp_path / "in"
    many.mkdir()
    for k in range(4):  # 4 copies of each photo: long enough to kill a worker in the middle
        for f in src.iterdir():
            if f.name != "g_broken.png":
                shutil.copy(f, many / f"{k}_{f.name}")
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "restore"] + faces_args(many, weights) + ["-o", str(out), "--ray", cluster,
                                                                          "--ray-workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "restored").glob("*"))) >= 3 and actor_pids():
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read()
    victim = actor_pids()[0]
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    expected = {f"{d}/{k}_{Path(name).stem}{Path(name).suffix}": data for k in range(4)
                for key, data in outputs_of(local).items() for d, name in [key.split("/", 1)]}
    got = outputs_of(out)
    assert got.keys() == expected.keys()  # every output present once
    assert [k for k in got if got[k] != expected[k]] == []  # none half-written: each is the local bytes
    assert not list(out.rglob(".*.tmp"))
    report = report_of(out)
    assert len(report) == 28 and len({e["input"] for e in report}) == 28 and all(e["error"] is None for e in report)


@pytest.mark.parametrize("command", ["segment", "translate", "sketch", "upscale"])
def test_the_other_commands_on_ray_match_their_local_run(cluster, tmp_path, capsys, command):
    src = tmp_path / "in"
    src.mkdir()
    if command == "upscale":  # a tiny SRVGG file: the runner's plumbing, not the network, is tested
        import torch

        from gan.nets.srvgg import PRESETS, SRVGGNetCompact
        from gan.serialize import save_model

        torch.manual_seed(0)
        weights = save_model(SRVGGNetCompact(PRESETS["tiny"]).eval(), tmp_path / "tiny_up.safetensors")
        rng = np.random.default_rng(1)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (20 + 4 * k, 24, 3), dtype=np.uint8)).save(src / f"{k}.png")
        args = ["upscale", str(src), "--weights", str(weights)]
    elif command == "segment":
        for name in ("dsb2018_heldout.png", "neuron_dapi_unseen.png"):
            shutil.copy(ROOT / "examples" / "nuclei" / name, src / name)
        args = ["segment", str(src), "--instances"]
    elif command == "translate":
        rng = np.random.default_rng(0)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (48 + 8 * k, 64, 3), dtype=np.uint8)).save(src / f"{k}.png")
        args = ["translate", str(src), "--weights", "restorer", "--tile", "32"]
    else:
        for name in ("monkey_lineart.png", "dog.png"):
            shutil.copy(ROOT / "examples" / "sketch" / name, src / name)
        args = ["sketch", str(src), "--style", str(ROOT / "examples" / "sketch" / "monkey.png"), "--max-side", "128"]
    (src / "notes.txt").write_text("not an image")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(args + ["-o", str(tmp_path / "local"), "--quiet"]) == 1
    capsys.readouterr()
    assert main(args + ["-o", str(tmp_path / "ray"), "--ray"]) == 1
    err = capsys.readouterr().err
    a, b = outputs_of(tmp_path / "local"), outputs_of(tmp_path / "ray")
    assert len(a) >= 3 and a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []
    assert sum(ln.startswith("error: ") for ln in err.splitlines()) == 1 and "ignored: " in err
    assert DATA  # (the shared data folder exists: examples are its held-out copies)


def test_ray_usage_errors(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert main(["segment", str(img), "-o", str(tmp_path / "o"), "--ray", "--ray-workers", "0"]) == 2
    assert "--ray-workers must be at least 1" in capsys.readouterr().err
