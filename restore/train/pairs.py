"""Image-pair training data from folders, with every problem found before training starts.

Layouts (``--layout auto`` picks the first that fits):

- ``ab``: ``A/`` (inputs) and ``B/`` (targets) with matching file stems;
- ``clean``: a folder of clean images, inputs made on the fly by a degradation (``--degrade``);
- ``side``: pix2pix's side-by-side images, input on the left half, target on the right.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from restore.imageio import ImageError, read_image
from restore.runners.inputs import scan_inputs
from restore.runners.report import printable

from .crops import fit_crop, resize_up, size_hint

LAYOUTS = ("auto", "ab", "clean", "side")


def report_unusable(problems: list[tuple[Path, str]], usable: int, skip_bad: bool, what: str,
                    fix: str = "") -> None:
    """Say which training files are unusable and why, before any training (one line each);
    stop unless told to skip them, or when nothing usable is left. ``fix`` says what to change
    when that is not the files themselves (e.g. "pass --crop 96"); ``--skip-bad`` is suggested
    only when it would leave something to train on."""
    for path, reason in problems:
        print(f"error: {printable(path)}: {printable(reason)}", file=sys.stderr)
    if not usable:
        listed = f"; all {len(problems)} file(s) are unusable (listed above)" if problems else ""
        raise ValueError(f"no usable images in the {what} data{listed}" + (f": {fix}" if fix else ""))
    if problems and not skip_bad:
        raise ValueError(f"{len(problems)} unusable file(s) in the {what} data (listed above); "
                         f"{fix + ', ' if fix else ''}fix them, or pass --skip-bad to train on the other {usable}")
    if problems:
        print(f"skipping {len(problems)} unusable file(s) in the {what} data")


@dataclass
class PairSet:
    pairs: list[tuple[np.ndarray | None, np.ndarray]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    paths: list[Path] = field(default_factory=list)  # the file of each pair (its input's for A/ + B/)
    ignored: int = 0  # files found that are not images (README, .DS_Store)


def fit_pair_crop(data: PairSet, requested: int | None, default: int, divisor: int,
                  hint: str = "") -> tuple[int, str, bool]:
    """(crop, fix, resized) for these pairs (see ``restore.crops``): with ``requested`` None the
    crop adapts (and the smaller pairs are resized up, ``resized``, when even one divisor is too
    big); with a crop given, the pairs smaller than it move to ``problems`` and ``fix`` names the
    crop that would fit."""
    sizes = [t.shape[:2] for _, t in data.pairs]
    if not sizes:
        return requested or default, "", False
    if requested is None:
        fit = fit_crop(sizes, [str(p) for p in data.paths], default, divisor, hint=hint)
        print(fit.message)
        if fit.resize_up:
            resize_pairs(data, fit.crop)
        return fit.crop, "", fit.resize_up
    small = [k for k, s in enumerate(sizes) if min(s) < requested]
    if not small:
        return requested, "", False
    for k in small:
        h, w = sizes[k]
        data.problems.append((data.paths[k], f"{w}x{h} is smaller than the {requested}-px crop"))
    keep = [k for k in range(len(sizes)) if k not in set(small)]
    data.pairs, data.names, data.paths = ([seq[k] for k in keep] for seq in (data.pairs, data.names, data.paths))
    return requested, size_hint(sizes, divisor, requested), False


def resize_pairs(data: PairSet, side: int) -> None:
    """Resize the pairs whose shorter side is below ``side`` up to it, both images alike."""
    data.pairs = [(None if i is None else resize_up(i, side), resize_up(t, side)) for i, t in data.pairs]


def _images(folder: Path, out: PairSet) -> dict[str, Path]:
    found = scan_inputs([folder], allow_empty=True)
    out.ignored += len(found.ignored)
    return {p.stem: p for p, _ in found.items}


def detect_layout(root: Path, degrade: str | None) -> str:
    if (root / "A").is_dir() and (root / "B").is_dir():
        return "ab"
    return "clean" if degrade else "side"


def load_pair_folder(root: str | Path, layout: str = "auto", degrade: str | None = None) -> PairSet:
    """Read every pair under ``root``; unreadable, unmatched or differently sized ones are
    collected in ``problems`` (never raised one by one mid-way). Pairs too small for a given
    crop are ``fit_pair_crop``'s to find."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder not found: {root}")
    if layout == "auto":
        layout = detect_layout(root, degrade)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    out = PairSet()

    def read(path: Path) -> np.ndarray | None:
        try:
            return read_image(path, mode="rgb8")
        except ImageError as e:
            out.problems.append((path, str(e)))
            return None

    def check(name: str, path: Path, inp: np.ndarray | None, tgt: np.ndarray) -> None:
        if inp is not None and inp.shape != tgt.shape:
            out.problems.append((path, f"input {inp.shape[1]}x{inp.shape[0]} and target "
                                       f"{tgt.shape[1]}x{tgt.shape[0]} differ in size"))
        else:
            out.pairs.append((inp, tgt))
            out.names.append(name)
            out.paths.append(path)

    if layout == "ab":
        a, b = _images(root / "A", out), _images(root / "B", out)
        for stem in sorted(set(a) - set(b)):
            out.problems.append((a[stem], "has no target in B/"))
        for stem in sorted(set(b) - set(a)):
            out.problems.append((b[stem], "has no input in A/"))
        for stem in sorted(set(a) & set(b)):
            inp, tgt = read(a[stem]), read(b[stem])
            if inp is not None and tgt is not None:
                check(stem, a[stem], inp, tgt)
    else:
        found = scan_inputs([root], allow_empty=True)
        out.ignored += len(found.ignored)
        for path, _ in found.items:
            img = read(path)
            if img is None:
                continue
            if layout == "clean":
                check(path.stem, path, None, img)
            elif img.shape[1] % 2:
                out.problems.append((path, f"width {img.shape[1]} is odd: not a side-by-side pair"))
            else:
                half = img.shape[1] // 2
                check(path.stem, path, np.ascontiguousarray(img[:, :half]), np.ascontiguousarray(img[:, half:]))
    if not out.pairs and not out.problems:
        raise ValueError(f"{root}: no images found (layouts: A/ + B/, side-by-side, or clean images with --degrade)")
    return out
