"""`restore train pix2pix` and `restore translate`: layouts, bad data, learning, exact resume
(SIGKILL included), a 2-process torchrun run, and the export loading in translate."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan.data.batches import PairBatches
from gan.presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS
from gan.serialize import load_model
from gan.train.checkpoint import load_checkpoint
from gan.train.config import TranslateOptions
from gan.train.loop import TrainConfig, train
from restore.cli import main
from restore.train.pairs import load_pair_folder
from tests import ROOT


def photo(seed: int, h: int = 72, w: int = 80) -> np.ndarray:
    """Smooth colour gradients with a few edges: photo-like enough for a degradation."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    img = np.stack([np.sin(3 * xx + rng.random() * 6), np.cos(4 * yy + rng.random() * 6), xx * yy], -1)
    img[h // 3: h // 2, w // 4: w // 2] = rng.random(3)
    return ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def clean_folder(root: Path, n: int = 4) -> Path:
    for i in range(n):
        save(root / f"p{i}.png", photo(i))
    return root


def test_layouts_are_detected(tmp_path):
    for i in range(2):
        save(tmp_path / "ab" / "A" / f"x{i}.png", photo(i))
        save(tmp_path / "ab" / "B" / f"x{i}.png", photo(i + 10))
        save(tmp_path / "side" / f"y{i}.png", np.concatenate([photo(i), photo(i + 10)], axis=1))
    ab = load_pair_folder(tmp_path / "ab")
    side = load_pair_folder(tmp_path / "side")
    clean = load_pair_folder(clean_folder(tmp_path / "clean"), degrade="mild")
    assert len(ab.pairs) == 2 and np.array_equal(ab.pairs[0][1], photo(10))
    assert len(side.pairs) == 2 and np.array_equal(side.pairs[1][0], photo(1))
    assert len(clean.pairs) == 4 and clean.pairs[0][0] is None


def test_bad_training_data_is_reported_before_training(tmp_path, capsys):
    d = tmp_path / "ab"
    save(d / "A" / "ok.png", photo(0))
    save(d / "B" / "ok.png", photo(1))
    save(d / "A" / "lonely.png", photo(2))  # no target
    save(d / "A" / "size.png", photo(3))
    save(d / "B" / "size.png", photo(3, 60, 80))  # differently sized
    save(d / "A" / "small.png", photo(4, 20, 20))
    save(d / "B" / "small.png", photo(4, 20, 20))  # smaller than the crop
    (d / "A" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    save(d / "B" / "broken.png", photo(5))
    args = ["train", "pix2pix", "--data", str(d), "--out", str(tmp_path / "run"), "--preset", "tiny",
            "--crop", "32", "--steps", "2", "--batch-size", "1", "--quiet", "--val-size", "32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    for name, why in [("lonely", "no target"), ("size", "differ in size"), ("small", "smaller than"),
                      ("broken", "error: ")]:
        assert any(name in line and why in line for line in err.splitlines()), (name, err)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    assert main(args + ["--skip-bad"]) == 0
    assert "skipping 4 unusable" in capsys.readouterr().out


def test_few_steps_lower_the_l1_loss_on_a_fixed_batch(tmp_path):
    torch.manual_seed(0)
    pairs = [(None, photo(i)) for i in range(2)]
    fixed = PairBatches(pairs, 32, 2, seed=3, degrade=lambda x, s: x * 0.6).batch(0)

    class Fixed:
        def batch(self, step):
            return fixed

    options = TranslateOptions(disc_arch="PatchDiscriminator", disc=PATCHGAN_PRESETS["tiny"].to_dict(),
                               r1_weight=1.0, r1_every=4)
    cfg = TrainConfig(task="translate", arch="UNetGenerator", model=PIX2PIX_PRESETS["tiny"].to_dict(), steps=40,
                      batch_size=2, lr=2e-3, betas=(0.5, 0.999), weight_decay=0, warmup=1, val_every=20,
                      options=options)
    summary = train(cfg, Fixed(), tmp_path, progress=False, log=lambda s: None)
    gen, _ = load_model(tmp_path / "generator.safetensors")
    with torch.no_grad():
        before = (fixed["input"] - fixed["target"]).abs().mean()
        after = (gen.train()(fixed["input"]) - fixed["target"]).abs().mean()
    assert after < 0.6 * before, (before, after)
    assert summary["history"][-1]["loss"] < summary["history"][0]["loss"]


def cli_args(data: Path, out: Path, steps: int = 8) -> list[str]:
    return ["train", "pix2pix", "--data", str(data), "--degrade", "mixed", "--out", str(out), "--preset", "tiny",
            "--crop", "32", "--steps", str(steps), "--batch-size", "2", "--val-every", "2", "--val-size", "32",
            "--threads", "1", "--quiet", "--r1-weight", "1", "--r1-every", "3"]


def test_resume_after_sigkill_gives_identical_weights(tmp_path):
    data = clean_folder(tmp_path / "clean")
    assert main(cli_args(data, tmp_path / "whole", steps=40)) == 0
    # The same run, killed with SIGKILL once a checkpoint exists, then resumed.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "restore", *cli_args(data, tmp_path / "cut", steps=40)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "cut" / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] < 40  # it really was cut short
    assert main(cli_args(data, tmp_path / "cut", steps=40) + ["--resume"]) == 0
    a, _ = load_model(tmp_path / "whole" / "last.safetensors")
    b, _ = load_model(tmp_path / "cut" / "last.safetensors")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


def test_torchrun_two_processes_stay_in_sync(tmp_path):
    data = clean_folder(tmp_path / "clean")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "restore", *cli_args(data, tmp_path / "run", steps=4)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all 2 ranks hold the same weights" in done.stdout
    assert (tmp_path / "run" / "generator.safetensors").is_file()


def test_export_loads_in_translate(tmp_path, capsys):
    data = clean_folder(tmp_path / "clean", n=3)
    assert main(cli_args(data, tmp_path / "run", steps=2)) == 0
    save(tmp_path / "in" / "big.png", photo(7, 100, 150))
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    code = main(["translate", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(tmp_path / "run"),
                 "--tile", "64", "--quiet"])
    assert code == 1  # one bad file
    out = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert out.shape == (100, 150, 3) and out.dtype == np.uint8
    assert "bad.png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["translate", str(tmp_path / "in"), "-o", str(tmp_path / "o2")])  # --weights is required
    assert stop.value.code == 2 and "the following arguments are required: --weights" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    pairs = [(None, photo(i)) for i in range(2)]
    good = PairBatches(pairs, 32, 2, seed=3, degrade=lambda x, s: x * 0.6)

    class Poisoned:
        def batch(self, step):
            b = good.batch(step)
            if step >= 5:
                b["input"] = b["input"] * float("nan")
            return b

    cfg = TrainConfig(task="translate", arch="UNetGenerator", model=PIX2PIX_PRESETS["tiny"].to_dict(), steps=10,
                      batch_size=2, warmup=1, val_every=4,
                      options=TranslateOptions(disc_arch="PatchDiscriminator", disc=PATCHGAN_PRESETS["tiny"].to_dict()))
    from gan.train.loop import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="not finite"):
        train(cfg, Poisoned(), tmp_path, progress=False, log=lambda s: None)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    gen, _ = load_model(tmp_path / "generator.safetensors")
    assert all(torch.isfinite(p).all() for p in gen.parameters())


def test_tampered_checkpoint_is_one_line(tmp_path, capsys):
    data = clean_folder(tmp_path / "clean", n=3)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert main(cli_args(data, tmp_path / "run", steps=2) + ["--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint" in err[0] and "damaged" in err[0]


def test_restorer_preset_l1_only_trains_without_the_discriminator(tmp_path, capsys):
    """--gan-weight 0 leaves D out (a reconstruction-only run); the export is a Restorer that
    `restore translate` applies."""
    data = clean_folder(tmp_path / "clean", n=3)
    args = cli_args(data, tmp_path / "run", steps=6) + ["--preset", "tiny-restorer", "--gan-weight", "0",
                                                        "--l1-weight", "1", "--beta1", "0.9", "--lr", "2e-3"]
    assert main(args) == 0
    gen, meta = load_model(tmp_path / "run" / "generator.safetensors")
    assert meta["arch"] == "Restorer" and meta["train_config"]["betas"] == [0.9, 0.999]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["opts"]["D"]["state"] == {}  # D's optimizer never stepped
    assert state["opts"]["G"]["state"]
    save(tmp_path / "in" / "x.png", photo(9, 40, 52))
    assert main(["translate", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights",
                 str(tmp_path / "run"), "--quiet"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "x.png")).shape == (40, 52, 3)
    # fine-tuning starts from the trained generator (lr 0: the export is that generator itself)
    tuned = cli_args(data, tmp_path / "tuned", steps=2) + ["--preset", "tiny-restorer", "--gan-weight", "0",
                                                           "--lr", "0", "--init-weights", str(tmp_path / "run")]
    assert main(tuned) == 0
    again, _ = load_model(tmp_path / "tuned" / "last.safetensors")
    start, _ = load_model(tmp_path / "run" / "generator.safetensors")  # what a run folder resolves to
    for (name, p), q in zip(again.state_dict().items(), start.state_dict().values()):
        assert torch.equal(p, q), name
    capsys.readouterr()
    assert main(tuned[:-2] + ["--preset", "tiny", "--init-weights", str(tmp_path / "run")]) == 2
    assert "does not match" in capsys.readouterr().err
    assert main(args + ["--num-downs", "3"]) == 2
    assert "apply to the pix2pix generator" in capsys.readouterr().err


def test_rotate_keeps_pairs_aligned_and_leaves_other_draws_alone():
    pairs = [(None, photo(i, 64, 64)) for i in range(2)]
    plain = PairBatches(pairs, 32, 1, seed=5, degrade=lambda x, s: x * 0.5)
    turned = PairBatches(pairs, 32, 1, seed=5, degrade=lambda x, s: x * 0.5, rotate=True)
    ks = []
    for step in range(12):
        a, b = plain.sample(step, 0), turned.sample(step, 0)
        assert np.array_equal(b[0], b[1] * 0.5)  # input and target turned together
        k = next(k for k in range(4) if np.array_equal(np.rot90(a[1], k), b[1]))  # same crop, turned
        ks.append(k)
    assert len(set(ks)) >= 3
