"""Training Real-ESRGAN's upscalers (task ``upscale``): the batches, both stages through the CLI
with their export taken by ``restore upscale``, ``--init`` (x2 from x4, published .pth), exact
resume with the U-Net discriminator's spectral-norm state, and a 2-process torchrun run. Tiny
presets, 32 px crops, one thread, a few steps."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from skimage import data

from gan.data.realesrgan import SecondOrderDegradation
from gan.data.upscale import UpscaleBatches
from gan.losses.perceptual import GFPGAN_VGG_LAYERS, PerceptualLoss
from gan.nets.rrdb import PRESETS as RRDB
from gan.nets.unet_disc import PRESETS as DISC
from gan.serialize import build_model, load_model, save_model
from gan.train.checkpoint import load_checkpoint
from gan.train.config import UpscaleOptions
from gan.train.loop import TrainConfig, train
from gan.train.trainers import TRAINERS
from restore.cli import main
from restore.train.upscale import initial_generator
from tests import ROOT


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photos(n: int = 4, h: int = 40, w: int = 48) -> list[np.ndarray]:
    img = data.astronaut()
    return [np.ascontiguousarray(img[37 * i:37 * i + h, 29 * i:29 * i + w]) for i in range(n)]


def photo_folder(root: Path, n: int = 5) -> Path:
    root.mkdir(parents=True)
    for i, p in enumerate(photos(n)):
        Image.fromarray(p).save(root / f"p{i}.png")
    return root


def test_batches_are_pure_functions_of_the_step():
    b = UpscaleBatches(photos(3, 24, 40), 32, 2, SecondOrderDegradation(scale=4), seed=3, real=True)
    one, two = b.batch(5), b.batch(5)
    assert one["input"].shape == (2, 3, 8, 8) and one["target"].shape == one["real"].shape == (2, 3, 32, 32)
    assert all(torch.equal(one[k], two[k]) for k in one)  # photos under the crop are mirror-padded
    assert not torch.equal(one["target"], one["real"])  # the target is USM-sharpened
    assert not torch.equal(b.batch(6)["input"], one["input"])
    threaded = UpscaleBatches(photos(3, 24, 40), 32, 2, SecondOrderDegradation(scale=4), seed=3, real=True, workers=2)
    assert all(torch.equal(threaded.batch(5)[k], one[k]) for k in one)  # threads change nothing but the time
    assert "real" not in UpscaleBatches(photos(1), 32, 1, SecondOrderDegradation(scale=2)).batch(0)
    with pytest.raises(ValueError, match="multiple of the scale"):
        UpscaleBatches(photos(1), 34, 1, SecondOrderDegradation(scale=4))


def tiny_config(steps: int, stage: str = "gan", perceptual_weight: float = 0.0, **kw) -> TrainConfig:
    options = UpscaleOptions(stage=stage, disc=DISC["tiny"].to_dict(), perceptual_weight=perceptual_weight)
    return TrainConfig(task="upscale", arch="RRDBNet", model=RRDB["tiny"].to_dict(), options=options, steps=steps,
                       batch_size=2, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.0, warmup=0, ema=0.999,
                       val_every=kw.pop("val_every", steps), image_every=2, seed=0, **kw)


@pytest.mark.parametrize("stage", ["net", "gan"])
def test_step_trains_every_term_and_lowers_the_loss(tmp_path, stage):
    """Every loss term of the stage is there and every parameter of G (and D) gets a gradient;
    20 steps on one fixed batch lower the L1 (perceptual over a random MobileNetV2 file:
    plumbing only, its VGG19 layer names mapped to MobileNetV2 stages)."""
    path = tmp_path / "mobilenet_v2.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    perceptual = PerceptualLoss(weights=path, layers=GFPGAN_VGG_LAYERS, vgg_names=True)
    cfg = tiny_config(20, stage=stage, perceptual_weight=1.0 if stage == "gan" else 0.0)
    torch.manual_seed(0)
    nets = TRAINERS["upscale"].networks(cfg)
    assert set(nets) == ({"G", "D"} if stage == "gan" else {"G"})
    opts = {k: torch.optim.Adam(n.parameters(), lr=2e-3, betas=(0.9, 0.99)) for k, n in nets.items()}
    batch = UpscaleBatches(photos(), 32, 2, SecondOrderDegradation(scale=4), seed=2, real=stage == "gan").batch(0)
    l1 = []
    for step in range(20):
        scalars = TRAINERS["upscale"].step(cfg, nets, opts, batch, step, perceptual=perceptual)
        if step == 0:
            want = {"loss", "l1"} | ({"perceptual", "gan", "d_real", "d_fake", "loss_d"} if stage == "gan" else set())
            assert set(scalars) == want
            for name, net in nets.items():
                assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters()), name
        l1.append(float(scalars["l1"]))
    assert l1[-1] < 0.8 * l1[0], l1
    assert TRAINERS["upscale"].grid(batch, nets["G"]).shape == (3, 3 * 32, 2 * 32)


class Interrupted(Exception):
    pass


def test_resume_is_exact(tmp_path):
    """Interrupted after the checkpoint of step 2 and resumed, a GAN-stage run ends with the
    weights (the discriminator's spectral-norm vectors included), optimizer states and EMA of an
    uninterrupted one."""
    cfg = tiny_config(4, val_every=2)
    good = UpscaleBatches(photos(), 32, 2, SecondOrderDegradation(scale=4), seed=1, real=True)

    class Cut:
        def batch(self, step):
            if step == 3:
                raise Interrupted
            return good.batch(step)

    quiet = {"progress": False, "log": lambda s: None}
    train(cfg, good, tmp_path / "whole", **quiet)
    with pytest.raises(Interrupted):
        train(cfg, Cut(), tmp_path / "cut", **quiet)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 2
    train(cfg, good, tmp_path / "cut", resume=True, **quiet)
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoint.pt"), load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert set(a["nets"]) == {"G", "D"} and "conv1.weight_u" in a["nets"]["D"]
    for net in a["nets"]:
        for k, v in a["nets"][net].items():
            assert torch.equal(v, b["nets"][net][k]), (net, k)
    for k, v in a["ema"].items():
        assert torch.equal(v, b["ema"][k]), k
    assert a["opts"]["D"]["state"][0]["exp_avg"].equal(b["opts"]["D"]["state"][0]["exp_avg"])
    assert not torch.equal(a["nets"]["D"]["conv1.weight_u"], build_model("UNetDiscriminatorSN", DISC["tiny"].to_dict())
                           .state_dict()["conv1.weight_u"])  # the power iteration ran


def cli_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "upscale", "--data", str(data), "--out", str(out), "--preset", "tiny", "--steps", "2",
            "--workers", "2",
            "--batch-size", "2", "--val-every", "2", "--threads", "1", "--quiet", "--perceptual", "none", *extra]


def test_both_stages_write_a_generator_restore_upscale_takes(tmp_path, capsys):
    folder = photo_folder(tmp_path / "photos")
    assert main(cli_args(folder, tmp_path / "net", "--stage", "net", "--arch", "srvgg", "--scale", "2")) == 0
    out = capsys.readouterr().out
    assert "stage net (L1 alone)" in out and "holding out 1 of 5" in out and "bicubic enlargement scores" in out
    model, meta = load_model(tmp_path / "net" / "generator.safetensors")
    assert meta["arch"] == "SRVGGNetCompact" and meta["task"] == "upscale" and model.config.upscale == 2
    assert meta["train_config"]["options"]["stage"] == "net" and "D" not in load_checkpoint(
        tmp_path / "net" / "checkpoint.pt")["nets"]
    # the GAN stage starts from the net stage's generator, as Real-ESRGAN does
    assert main(cli_args(folder, tmp_path / "gan", "--arch", "srvgg", "--scale", "2", "--init",
                         str(tmp_path / "net"))) == 0
    assert "generator initialised from" in capsys.readouterr().out
    _, meta = load_model(tmp_path / "gan" / "generator.safetensors")
    assert meta["train_config"]["options"]["stage"] == "gan" and meta["degradation"]["scale"] == 2
    assert set(load_checkpoint(tmp_path / "gan" / "checkpoint.pt")["nets"]) == {"G", "D"}
    assert (tmp_path / "gan" / "tb").is_dir()
    assert main(["upscale", str(folder / "p0.png"), "-o", str(tmp_path / "big"), "--weights", str(tmp_path / "gan"),
                 "--quiet"]) == 0
    assert Image.open(tmp_path / "big" / "p0_out.png").size == (96, 80)


def test_init_takes_the_tensors_that_fit(tmp_path):
    torch.manual_seed(4)
    x4 = build_model("RRDBNet", RRDB["tiny"].to_dict())
    save_model(x4, tmp_path / "x4.safetensors")
    torch.save({"params_ema": x4.state_dict()}, tmp_path / "x4.pth")  # a published layout
    x2 = RRDB["tiny"].__class__(**{**RRDB["tiny"].to_dict(), "scale": 2})
    lines = []
    for source in ("x4.safetensors", "x4.pth"):
        state = initial_generator(str(tmp_path / source), "RRDBNet", x2, seed=0, log=lines.append)
        assert state["conv_first.weight"].shape[1] == 12  # x2's pixel-unshuffled input: left at random
        assert torch.equal(state["body.0.rdb1.conv1.weight"], x4.state_dict()["body.0.rdb1.conv1.weight"])
    assert "1 start at random (conv_first.weight)" in lines[0]
    with pytest.raises(ValueError, match="not the SRVGGNetCompact"):
        initial_generator(str(tmp_path / "x4.safetensors"), "SRVGGNetCompact", None, seed=0)


def test_usage_errors_are_one_line(tmp_path, capsys):
    folder = photo_folder(tmp_path / "photos", 2)
    assert main(cli_args(folder, tmp_path / "x", "--crop", "30")) == 2
    assert "--crop 30" in capsys.readouterr().err
    assert main(cli_args(folder, tmp_path / "x", "--stage", "net", "--init-d", "d.pth")) == 2
    assert "--init-d starts the discriminator" in capsys.readouterr().err


def test_torchrun_two_processes_stay_in_sync(tmp_path):
    folder = photo_folder(tmp_path / "photos", 4)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
           "-m", "restore", *cli_args(folder, tmp_path / "run")]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all 2 ranks hold the same weights" in done.stdout
