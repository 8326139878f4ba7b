"""The flags every GAN trainer (pix2pix, colorizer, gfpgan) ends its parser with."""
from __future__ import annotations

import argparse


def add_run_args(s: argparse.ArgumentParser, val_every: int) -> None:
    """``--amp --val-every --skip-bad --seed --threads --resume --quiet``."""
    s.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA and on CPUs with AVX512-BF16")
    s.add_argument("--val-every", type=int, default=val_every)
    s.add_argument("--skip-bad", action="store_true", help="train without unusable files instead of stopping")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--resume", action="store_true")
    s.add_argument("--quiet", action="store_true")
