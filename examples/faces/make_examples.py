"""Write the degraded example photos of this folder (run from the repository root):

    .venv/bin/python examples/faces/make_examples.py

Sources: ``skimage.data.astronaut()`` and matplotlib's ``grace_hopper.jpg`` (both public domain,
see README.md), degraded with GFP-GAN's pipeline (``gan.degrade``) at fixed settings and seeds,
so the files are reproducible.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data

from gan.data.degrade import DegradeConfig, degrade

HERE = Path(__file__).resolve().parent


def fixed(blur: float, down: float, noise: float, jpeg: float, grey: bool = False) -> DegradeConfig:
    """One degradation, no random ranges: each (low, high) pair is a single value."""
    return DegradeConfig(kernel_list=("iso",), kernel_prob=(1.0,), blur_sigma=(blur, blur),
                         downsample_range=(down, down), noise_range=(noise, noise), jpeg_range=(jpeg, jpeg),
                         color_jitter_prob=0.0, gray_prob=1.0 if grey else 0.0)


def apply(rgb: np.ndarray, config: DegradeConfig, seed: int) -> np.ndarray:
    out = degrade(rgb.astype(np.float32) / 255, config, np.random.default_rng(seed))
    return (out.clip(0, 1) * 255).round().astype(np.uint8)


def main() -> None:
    astronaut = data.astronaut()
    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        hopper = np.array(im.convert("RGB"))
    # A colour portrait: blurred, 3x resolution lost, noisy, strongly compressed.
    a = apply(astronaut, fixed(1.5, 3.0, 8.0, 40.0), seed=1)
    Image.fromarray(a).save(HERE / "astronaut_degraded.jpg", quality=92)
    # An "old photo": greyscale, blurred, grainy; saved as a grey PNG.
    h = apply(hopper, fixed(2.0, 2.5, 12.0, 60.0, grey=True), seed=2)
    Image.fromarray(h[..., 0]).save(HERE / "hopper_old_grey.png", optimize=True)
    # Two smaller faces in one photo, side by side.
    pair = np.concatenate([astronaut[:, :, :], hopper[44:556, :, :]], axis=1)
    small = np.array(Image.fromarray(pair).resize((640, 320), Image.BICUBIC))
    p = apply(small, fixed(1.0, 1.5, 6.0, 50.0), seed=3)
    Image.fromarray(p).save(HERE / "two_faces_small.jpg", quality=92)


if __name__ == "__main__":
    main()
