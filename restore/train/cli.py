"""``restore train TRAINER``: the trainers' arguments, in a module that imports neither torch
nor the trainers, so ``restore train pix2pix --help`` and a usage error answer at once. Each
trainer's ``run`` is imported when the command runs.

The choices below name tables that live with the code that uses them (presets in the network
descriptors and ``gan.presets``, degradations in ``gan.data.degrade``, losses in ``gan.losses``);
tests/restore/train/test_train_cli_args.py checks that each equals its table.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from restore.sketch.options import METHODS

DEGRADE_NAMES = ("gfpgan", "jpeg", "mild", "mixed", "mixed-jpeg", "none", "old-photo", "photo")
PIX2PIX_PRESET_NAMES = ("tiny", "default", "paper", "restorer", "restorer-wide", "tiny-restorer")
GFPGAN_PRESET_NAMES = ("paper", "small", "tiny")
GAN_LOSSES = ("vanilla", "lsgan", "hinge", "wgan-softplus")
SEG_LOSS_NAMES = ("ce", "wce", "dice", "dice_ce")
UPSCALE_STAGES = ("net", "gan")
TRAINERS = ("pix2pix", "colorizer", "gfpgan", "segmenter", "upscale")  # restore/train/<name>.py, each with run(args)


def add_parsers(tsub) -> None:
    """Every trainer's subcommand, each running its module's ``run`` (imported then)."""
    for name in TRAINERS:
        globals()[f"_{name}"](tsub).set_defaults(run=_runner(name))


def _runner(name: str):
    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(f"restore.train.{name}").run(args)

    run.__qualname__ = f"run_{name}"
    return run


def add_run_args(s: argparse.ArgumentParser, val_every: int) -> None:
    """``--amp --val-every --skip-bad --seed --threads --resume --quiet``."""
    s.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA and on CPUs with AVX512-BF16")
    s.add_argument("--val-every", type=int, default=val_every)
    s.add_argument("--skip-bad", action="store_true", help="train without unusable files instead of stopping")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--resume", action="store_true")
    s.add_argument("--quiet", action="store_true")


def _pix2pix(tsub) -> argparse.ArgumentParser:
    """``restore train pix2pix`` (or ``restore train translate``, the task's word)."""
    s = tsub.add_parser("pix2pix", aliases=["translate"],
                        help="train a U-Net GAN (pix2pix) on image pairs or degraded clean photos")
    s.add_argument("--data", required=True, type=Path,
                   help="A/ + B/ folders, side-by-side pairs, or clean images with --degrade")
    s.add_argument("--layout", default="auto", choices=["auto", "ab", "side", "clean"])
    s.add_argument("--degrade", choices=DEGRADE_NAMES,
                   help="make inputs from clean images with this degradation model (gan/data/degrade.py)")
    s.add_argument("--val", type=Path, help="validation folder (same layout); default: every 10th pair")
    s.add_argument("--val-size", type=int, default=256, help="side of the validation centre crops")
    s.add_argument("--out", required=True, type=Path, help="run folder (generator.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--preset", default="default", choices=PIX2PIX_PRESET_NAMES,
                   help="network sizes: pix2pix's (default, paper, tiny) or the residual restorer's")
    s.add_argument("--num-downs", type=int, help="generator depth (default: the preset's)")
    s.add_argument("--init", choices=["pix2pix", "default"],
                   help="generator initialisation: pix2pix's N(0, 0.02) or PyTorch's (default: the preset's)")
    s.add_argument("--n-layers", type=int, help="PatchGAN layers (3 = 70x70 patches)")
    s.add_argument("--spectral-norm", action="store_true", help="spectral norm in the discriminator")
    s.add_argument("--steps", type=int, default=20000)
    s.add_argument("--batch-size", type=int, default=4)
    s.add_argument("--crop", type=int, default=None,
                   help="training crop side (default: 256, or, for smaller images, the largest multiple of the "
                        "generator's size divisor that every pair allows; pairs below one divisor, e.g. 256 px for "
                        "the default 8-level U-Net, are resized up to it, as pix2pix does). Given, pairs smaller "
                        "than it are unusable")
    s.add_argument("--scale", type=float, nargs=2, default=(1.0, 1.0), metavar=("MIN", "MAX"),
                   help="random resize of the crops (e.g. 0.5 1.0)")
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--rotate", action="store_true",
                   help="also rotate crops by multiples of 90 degrees (8 orientations with the flip; for restoration data)")
    s.add_argument("--init-weights", help="fine-tune: start the generator from this run, file or bundled name")
    s.add_argument("--beta1", type=float, default=0.5, help="Adam's beta1 (pix2pix: 0.5; 0.9 for L1-only runs)")
    s.add_argument("--gan-loss", default="vanilla", choices=GAN_LOSSES)
    s.add_argument("--gan-weight", type=float, default=1.0)
    s.add_argument("--l1-weight", type=float, default=100.0)
    s.add_argument("--perceptual-weight", type=float, default=0.0)
    s.add_argument("--perceptual", default="auto", choices=["auto", "vgg19", "mobilenet_v2"],
                   help="perceptual backbone (auto: VGG19 if its weights are in the torch hub cache)")
    s.add_argument("--perceptual-weights", type=Path, help="backbone state-dict file (e.g. mobilenet_v2-b0353104.pth)")
    s.add_argument("--r1-weight", type=float, default=0.0)
    s.add_argument("--r1-every", type=int, default=16)
    s.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported generator (0: off)")
    add_run_args(s, val_every=500)
    return s


def _colorizer(tsub) -> argparse.ArgumentParser:
    """``restore train colorizer`` (or ``restore train sketch``, the task's word)."""
    s = tsub.add_parser("colorizer", aliases=["sketch"],
                        help="train the reference-guided sketch colorizer on a folder of colour images")
    s.add_argument("--data", required=True, type=Path, help="colour images (searched recursively; alpha over white)")
    s.add_argument("--val", type=Path, help="validation images; default: every 10th image of --data")
    s.add_argument("--val-count", type=int, default=32, help="score at most this many validation images")
    s.add_argument("--out", required=True, type=Path, help="run folder (generator.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--preset", default="default", choices=["tiny", "default", "paper"])
    s.add_argument("--style-encoder", choices=["trainable", "mobilenet_v2", "vgg19", "none"],
                   help="the reference's style vector (default: the preset's); with --style-weights for a file")
    s.add_argument("--style-weights", type=Path, help="backbone state dict (e.g. mobilenet_v2-b0353104.pth)")
    s.add_argument("--no-hints", action="store_true", help="a model without the colour-hint input")
    s.add_argument("--hint-prob", type=float, default=0.5, help="share of samples given random colour hints")
    s.add_argument("--sketch", default="random", choices=["random", *METHODS],
                   help="training sketches: random XDoG/threshold parameters (default), one method, or hed")
    s.add_argument("--attention", type=int, choices=range(0, 5), metavar="LEVELS",
                   help="sketch-to-reference cross-attention at this many levels from the bottleneck up "
                        "(0: none, the style vector only; default: the preset's)")
    s.add_argument("--match-level", type=int, choices=range(-1, 4), metavar="LEVEL",
                   help="sketch-keyed correspondence (the reference's own XDoG sketch through the same encoder) "
                        "at this decoder level (0 = top; -1: none; default: the preset's)")
    s.add_argument("--self-ref", type=float, default=0.8,
                   help="share of samples whose reference is the target itself, warped, turned, flipped "
                        "and zoomed (SCFT's augmented-self reference); the rest get shuffled patches")
    s.add_argument("--init", help="start from this colorizer's weights (a file or a bundled name), e.g. "
                                  "the bundled `colorizer`, where names and shapes match")
    s.add_argument("--unpaired", type=float, default=0.0,
                   help="share of samples whose reference is another image (adversarial and style losses only)")
    s.add_argument("--max-side", type=int, default=256, help="downscale larger images to this (0: keep)")
    s.add_argument("--steps", type=int, default=10000)
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--crop", type=int, default=128,
                   help="training crop side (default 128; smaller images are padded with white, the clip-art "
                        "background, so images of any and mixed sizes train as they are)")
    s.add_argument("--scale", type=float, nargs=2, default=(0.5, 1.0), metavar=("MIN", "MAX"),
                   help="random resize of the crops")
    s.add_argument("--lr", type=float, default=2e-4)
    s.add_argument("--beta1", type=float, default=0.5)
    s.add_argument("--gan-loss", default="vanilla", choices=GAN_LOSSES)
    s.add_argument("--gan-weight", type=float, default=1.0, help="0: no discriminator (L1 and guides only)")
    s.add_argument("--l1-weight", type=float, default=100.0)
    s.add_argument("--guide-weights", type=float, nargs=2, default=(0.3, 0.9), metavar=("GREY", "COLOUR"))
    s.add_argument("--aux-weight", type=float, default=1.0, help="the AC-GAN style regression term")
    s.add_argument("--ema", type=float, default=0.999)
    add_run_args(s, val_every=500)
    return s


def _gfpgan(tsub) -> argparse.ArgumentParser:
    """``restore train gfpgan`` (or ``restore train faces``, the task's word)."""
    s = tsub.add_parser("gfpgan", aliases=["faces"],
                        help="train or fine-tune the GFP-GAN face restorer on aligned faces")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="aligned face images (FFHQ layout: a folder of square crops of any "
                                                "and mixed sizes, each resized to the preset's side)")
    src.add_argument("--pairs", type=Path, nargs=2, metavar=("A_DIR", "B_DIR"),
                     help="explicit (degraded, clean) aligned faces, matched by file name")
    s.add_argument("--val", type=Path, help="held-out clean faces, degraded once at a fixed seed "
                                            "(default: every 10th training face)")
    s.add_argument("--val-count", type=int, default=16, help="score at most this many validation faces")
    s.add_argument("--out", required=True, type=Path, help="run folder (generator.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--preset", default="small", choices=GFPGAN_PRESET_NAMES,
                   help="tiny: 32 px (tests); small: 128 px (CPU); paper: 512 px, GFPGANv1.3/1.4's generator")
    s.add_argument("--prior", type=Path, help="pretrained StyleGAN2 for the decoder (.pth, params_ema; clean or "
                                              "basicsr layout)")
    s.add_argument("--channel-multiplier", type=int, choices=[1, 2],
                   help="generator width above 32 px (default: the preset's; GFP-GAN's Cmul1 prior needs 1)")
    s.add_argument("--fix-decoder", action="store_true", help="freeze the decoder (with --prior or --init-weights)")
    s.add_argument("--init-weights", help="fine-tune from a GFPGANv1.3/1.4 .pth (or its name), a run folder or "
                                          "a .safetensors (generator only)")
    s.add_argument("--degrade", default="gfpgan", choices=DEGRADE_NAMES,
                   help="degradation model making the inputs (default: GFP-GAN's)")
    s.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    s.add_argument("--steps", type=int, default=20000)
    s.add_argument("--batch-size", type=int, default=4, help="per process; at most 4 or a multiple of 4")
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--pixel-weight", type=float, default=0.1)
    s.add_argument("--pyramid-weight", type=float, default=1.0)
    s.add_argument("--pyramid-until", type=int, default=50000, help="step from which the pyramid loss is off")
    s.add_argument("--perceptual-weight", type=float, default=1.0)
    s.add_argument("--style-weight", type=float, default=50.0)
    s.add_argument("--perceptual", default="auto", choices=["auto", "vgg19", "mobilenet_v2", "none"],
                   help="backbone (auto: VGG19 when in the torch hub cache, else --perceptual-weights, else off)")
    s.add_argument("--perceptual-weights", type=Path, help="backbone state dict (vgg19-dcbb9e9d.pth, "
                                                           "mobilenet_v2-b0353104.pth)")
    s.add_argument("--gan-weight", type=float, default=0.1)
    s.add_argument("--r1-weight", type=float, default=10.0)
    s.add_argument("--r1-every", type=int, default=16)
    s.add_argument("--component-weight", type=float, default=1.0, help="facial-component GAN loss")
    s.add_argument("--component-style-weight", type=float, default=200.0)
    s.add_argument("--identity-weights", type=Path, help="ArcFace arcface_resnet18.pth (identity loss; off without)")
    s.add_argument("--identity-weight", type=float, default=10.0)
    s.add_argument("--ema", type=float, default=0.5 ** (32 / 10000), help="EMA decay of the exported generator")
    add_run_args(s, val_every=1000)
    return s


def _segmenter(tsub) -> argparse.ArgumentParser:
    """``restore train segmenter`` (or ``restore train segment``, the task's word)."""
    s = tsub.add_parser("segmenter", aliases=["segment"],
                        help="train a segmentation U-Net on images/ + masks/ (or CTC) data")
    s.add_argument("--data", required=True, type=Path, help="folder with images/ and masks/, or a CTC sequence folder")
    s.add_argument("--val", type=Path, help="validation folder (same layout); default: hold out part of --data")
    s.add_argument("--val-fraction", type=float, default=0.2)
    s.add_argument("--out", required=True, type=Path, help="run folder (model.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--model", default="plain", choices=["plain", "residual", "attention", "multires", "unetr"])
    s.add_argument("--dims", type=int, default=2, choices=[2, 3])
    s.add_argument("--preset", default="default", choices=["tiny", "default", "paper"])
    s.add_argument("--classes", type=int, default=2, help="classes incl. background (instance masks -> 2)")
    s.add_argument("--in-channels", type=int, default=1)
    s.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    s.add_argument("--epochs", type=int, help="epochs (one epoch ~ every training pixel seen once); default 50")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--crop", type=int, default=None,
                   help="training crop side (default: 256, or, for smaller images or volumes, the largest multiple "
                        "of the U-Net's size divisor that every image allows; never resized, since that would "
                        "change the objects' scale: images below one divisor have their borders mirrored)")
    s.add_argument("--lr", type=float, default=1e-3)
    s.add_argument("--loss", default="dice_ce", choices=SEG_LOSS_NAMES)
    s.add_argument("--zoom", type=float, nargs=2, default=(0.6, 1.7), metavar=("MIN", "MAX"),
                   help="scale augmentation range (default 0.6 1.7)")
    s.add_argument("--augment", action="append", default=[], metavar="FIELD=VALUE",
                   help="override an augmentation setting of gan.data.augment.AugmentConfig, e.g. rotate=180 "
                        "or gamma=0.6,1.6 (repeatable)")
    s.add_argument("--diameter", type=float, default=None,
                   help="rescale every image so its median object diameter becomes this many px")
    s.add_argument("--val-every", type=int, help="steps between validations (default: one epoch)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    s.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    s.add_argument("--quiet", action="store_true")
    return s


def _upscale(tsub) -> argparse.ArgumentParser:
    """``restore train upscale``: Real-ESRGAN's recipe (restore/train/upscale.py)."""
    s = tsub.add_parser("upscale", help="train or fine-tune a Real-ESRGAN upscaler on clean photos "
                                        "(second-order degradation on the fly)")
    s.add_argument("--data", required=True, type=Path, help="clean photos (searched recursively)")
    s.add_argument("--val", type=Path, help="held-out clean photos, degraded once at a fixed seed "
                                            "(default: every 10th training photo)")
    s.add_argument("--val-count", type=int, default=16, help="score at most this many validation photos")
    s.add_argument("--val-size", type=int, default=256, help="side of the validation centre crops (clean)")
    s.add_argument("--out", required=True, type=Path, help="run folder (generator.safetensors, checkpoint.pt, tb/)")
    s.add_argument("--scale", type=int, default=4, choices=[2, 4])
    s.add_argument("--arch", default="rrdb", choices=["rrdb", "srvgg"],
                   help="rrdb: RRDBNet (RealESRGAN_x4plus's 23 blocks); srvgg: SRVGGNetCompact (realesr-general-x4v3's)")
    s.add_argument("--preset", default="default", choices=["default", "tiny"], help="tiny: for tests")
    s.add_argument("--stage", default="gan", choices=UPSCALE_STAGES,
                   help="net: Real-ESRNet (L1 alone); gan: L1 + perceptual + GAN with the U-Net discriminator")
    s.add_argument("--init", help="start the generator from these weights: a model name (realesrgan-x4plus), "
                                  "a run folder, a .safetensors or a published .pth (tensors of another shape, "
                                  "e.g. an x2 network's first conv, start at random)")
    s.add_argument("--init-d", type=Path, help="start the discriminator from a published "
                                               "RealESRGAN_x4plus_netD.pth (--stage gan)")
    s.add_argument("--steps", type=int, default=20000)
    s.add_argument("--batch-size", type=int, default=12, help="per process (Real-ESRGAN: 12 per GPU)")
    s.add_argument("--crop", type=int, help="training crop side of the clean photo (default 256, tiny: 32)")
    s.add_argument("--lr", type=float, help="default: 2e-4 for --stage net, 1e-4 for gan (Real-ESRGAN's)")
    s.add_argument("--l1-weight", type=float, default=1.0)
    s.add_argument("--perceptual-weight", type=float, default=1.0)
    s.add_argument("--perceptual", default="auto", choices=["auto", "vgg19", "mobilenet_v2", "none"],
                   help="backbone (auto: VGG19 when in the torch hub cache, else --perceptual-weights, else off)")
    s.add_argument("--perceptual-weights", type=Path, help="backbone state dict (vgg19-dcbb9e9d.pth)")
    s.add_argument("--gan-weight", type=float, default=0.1)
    s.add_argument("--no-usm", action="store_true", help="train against the photos as they are, not USM-sharpened")
    s.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported generator (0: off)")
    s.add_argument("--loader-threads", type=int, default=1, help="threads preparing the next batches (2 ahead)")
    s.add_argument("--workers", type=int, default=1,
                   help="threads degrading the samples of each batch (about 0.06 s per 256 px sample and core; "
                        "on a GPU give it most of the CPU cores)")
    add_run_args(s, val_every=1000)
    return s
