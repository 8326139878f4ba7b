"""Segmentation metrics: IoU and Dice per class and for the foreground, instance matching
(precision / recall / F1 at an IoU threshold, the DSB2018 average precision), and the
evaluation of a folder of predictions against a folder of ground truth.

Convention: when a class is absent from both prediction and ground truth, IoU and Dice are
1.0 (nothing to find, nothing found), so means over images are not poisoned by NaN.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["iou", "dice", "segmentation_scores", "instance_matching", "average_precision",
           "read_labels", "match_files", "evaluate_folders", "format_table"]

MASK_SUFFIXES = ("_mask", "_masks", "_labels", "_label", "_instances", "_seg")
SKIP_SUFFIXES = ("_overlay", "_prob", "_probs", "_probability")  # other outputs of `segment`
EXTENSIONS = (".png", ".tif", ".tiff", ".bmp", ".npy")


def _counts(pred: np.ndarray, gt: np.ndarray, label: int) -> tuple[int, int, int]:
    p, g = np.asarray(pred) == label, np.asarray(gt) == label
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p)), int(np.count_nonzero(g))


def iou(pred: np.ndarray, gt: np.ndarray, label: int = 1) -> float:
    """Intersection over union of ``label`` in two maps; 1.0 when both lack it."""
    inter, np_, ng = _counts(pred, gt, label)
    union = np_ + ng - inter
    return inter / union if union else 1.0


def dice(pred: np.ndarray, gt: np.ndarray, label: int = 1) -> float:
    """Dice (F1) of ``label`` in two maps; 1.0 when both lack it."""
    inter, np_, ng = _counts(pred, gt, label)
    return 2 * inter / (np_ + ng) if np_ + ng else 1.0


def segmentation_scores(pred: np.ndarray, gt: np.ndarray, num_classes: int | None = None,
                        per_class: bool = True) -> dict:
    """IoU and Dice of the foreground (any label > 0, so instance maps compare as masks)
    and, for class maps, of each class 1..num_classes-1 (default: every label present)."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    fp, fg = pred > 0, gt > 0
    out: dict = {"foreground": {"iou": iou(fp, fg, True), "dice": dice(fp, fg, True)}, "per_class": {}}
    if per_class:
        classes = (range(1, num_classes) if num_classes is not None
                   else [int(c) for c in np.union1d(np.unique(pred), np.unique(gt)) if c > 0])
        for c in classes:
            out["per_class"][int(c)] = {"iou": iou(pred, gt, c), "dice": dice(pred, gt, c)}
    return out


# -- instances ---------------------------------------------------------------------------------
def _overlaps(pred: np.ndarray, gt: np.ndarray):
    """Sparse contingency table: (gt index, pred index, intersection) for touching pairs,
    with areas; labels are relabelled 1..n so any label values work."""
    _, g = np.unique(gt, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)
    g, p = g.ravel(), p.ravel()
    # index 0 is background only when the map has any
    g = g + (0 if (np.asarray(gt) == 0).any() else 1)
    p = p + (0 if (np.asarray(pred) == 0).any() else 1)
    ng, np_ = int(g.max(initial=0)), int(p.max(initial=0))
    area_g = np.bincount(g, minlength=ng + 1)
    area_p = np.bincount(p, minlength=np_ + 1)
    keep = (g > 0) & (p > 0)
    pairs, inter = np.unique(g[keep].astype(np.int64) * (np_ + 1) + p[keep], return_counts=True)
    return pairs // (np_ + 1), pairs % (np_ + 1), inter, area_g, area_p, ng, np_


def instance_matching(pred_labels: np.ndarray, gt_labels: np.ndarray, thresh: float = 0.5) -> dict:
    """Match predicted to true instances by IoU >= ``thresh`` (as stardist's ``matching``).

    Above 0.5 a match is unique, so pairs are simply counted; below, a linear assignment
    maximises the number of matches, then their IoU. Returns tp, fp, fn, precision, recall,
    f1, accuracy (= tp / (tp + fp + fn), the DSB2018 score at this threshold),
    mean_matched_iou, n_true, n_pred. With no objects on either side every score is 1.0.
    """
    if np.shape(pred_labels) != np.shape(gt_labels):
        raise ValueError(f"shapes differ: {np.shape(pred_labels)} vs {np.shape(gt_labels)}")
    gi, pi, inter, area_g, area_p, ng, np_ = _overlaps(pred_labels, gt_labels)
    ious = inter / (area_g[gi] + area_p[pi] - inter) if len(inter) else np.zeros(0)
    cand = ious >= thresh
    if thresh > 0.5 or not cand.any():
        matched = ious[cand]
    else:
        rows, r_inv = np.unique(gi[cand], return_inverse=True)
        cols, c_inv = np.unique(pi[cand], return_inverse=True)
        score = np.zeros((len(rows), len(cols)))
        score[r_inv, c_inv] = ious[cand]
        n = max(len(rows), len(cols))
        cost = -(score >= thresh).astype(float) - score / (2 * n)  # first the count of matches, then IoU
        r, c = linear_sum_assignment(cost)
        matched = score[r, c][score[r, c] >= thresh]
    tp = len(matched)
    fp, fn = np_ - tp, ng - tp

    def ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    return {"thresh": thresh, "tp": tp, "fp": fp, "fn": fn, "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "accuracy": ratio(tp, tp + fp + fn),
            "mean_matched_iou": float(matched.mean()) if tp else (1.0 if ng + np_ == 0 else 0.0),
            "n_true": ng, "n_pred": np_}


def average_precision(pred_labels: np.ndarray, gt_labels: np.ndarray,
                      thresholds: Sequence[float] = tuple(np.round(np.arange(0.5, 1.0, 0.05), 2))) -> float:
    """DSB2018 score: the mean over IoU thresholds of tp / (tp + fp + fn)."""
    return float(np.mean([instance_matching(pred_labels, gt_labels, t)["accuracy"] for t in thresholds]))


# -- folders ----------------------------------------------------------------------------------
def read_labels(path: Path) -> np.ndarray:
    """A label map from PNG/BMP (Pillow), TIFF (tifffile) or .npy. Grey stored as RGB is read
    as one channel; a binary mask stored as 0/255 becomes 0/1."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile
        arr = tifffile.imread(path)
    elif suffix == ".npy":
        arr = np.load(path)
    else:
        from PIL import Image
        with Image.open(path) as im:
            arr = np.array(im)  # mode P keeps palette indices, I;16 stays 16-bit
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and suffix not in (".tif", ".tiff", ".npy"):
        if not (arr[..., :3] == arr[..., :1]).all():
            raise ValueError(f"{path}: colour masks are not label maps; save class indices")
        arr = arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    values = np.unique(arr)
    if len(values) <= 2 and values.max(initial=0) == 255 and values.min(initial=0) in (0, 255):
        arr = (arr == 255).astype(np.uint8)
    return arr


def _key(path: Path) -> str:
    stem = path.stem
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _candidates(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.stem.endswith(SKIP_SUFFIXES):
            found.setdefault(_key(p), []).append(p)
    return found


def _pick(paths: list[Path], instances: bool | None) -> Path:
    """Among files of one image, prefer instance labels when asked, else the ``_mask``."""
    order = ("_instances", "_labels", "_label", "_mask", "_masks", "_seg", "")
    if not instances:
        order = ("_mask", "_masks", "_seg", "") + order[:3]
    rank = {s: i for i, s in enumerate(order)}
    return min(paths, key=lambda p: (rank.get(p.stem[len(_key(p)):], len(order)), p.suffix != ".tif", p.name))


def match_files(pred_dir: Path, gt_dir: Path, instances: bool | None = None):
    """Pairs (key, pred path, gt path) matched by stem, ``_mask``-like suffixes ignored on
    both sides, plus the keys found only among predictions and only among ground truth."""
    preds, gts = _candidates(Path(pred_dir)), _candidates(Path(gt_dir))
    pairs = [(k, _pick(preds[k], instances), _pick(gts[k], instances)) for k in sorted(preds.keys() & gts.keys())]
    return pairs, sorted(preds.keys() - gts.keys()), sorted(gts.keys() - preds.keys())


def _is_instance_map(arr: np.ndarray) -> bool:
    """Instance maps are stored 16/32-bit or hold many labels; class maps are 8-bit and few."""
    return arr.dtype.itemsize > 1 or len(np.unique(arr)) > 64


def evaluate_folders(pred_dir: Path, gt_dir: Path, instances: bool | None = None,
                     num_classes: int | None = None, thresh: float = 0.5) -> tuple[list[dict], dict]:
    """Score every prediction against its ground truth (matched by stem, see ``match_files``).

    Returns one row per image (``image``, foreground ``iou``/``dice``; for class maps
    ``iou[c]``/``dice[c]`` per class; for instance maps ``precision``/``recall``/``f1`` at
    ``thresh`` and ``ap`` (DSB2018)) and a summary: ``mean`` of each column over images,
    ``n``, ``unmatched_pred``, ``unmatched_gt``. ``instances`` None decides per image
    (a 16-bit map or one with more than 64 labels is an instance map; instance scores are
    given when both sides are instance maps).
    """
    pairs, only_pred, only_gt = match_files(pred_dir, gt_dir, instances)
    rows = []
    for key, pp, gp in pairs:
        pred, gt = read_labels(pp), read_labels(gp)
        if pred.shape != gt.shape:
            raise ValueError(f"{pp.name} {pred.shape} and {gp.name} {gt.shape} differ in shape")
        gt_inst, pred_inst = _is_instance_map(gt), _is_instance_map(pred)
        # Instance scores need instances on both sides; a class map against instance truth is
        # scored on the foreground alone (the truth's labels are not classes).
        if instances is None:
            inst, per_class = gt_inst and pred_inst, not (gt_inst or pred_inst)
        else:
            inst, per_class = instances, not instances
        scores = segmentation_scores(pred, gt, num_classes, per_class=per_class)
        row: dict = {"image": key, "iou": scores["foreground"]["iou"], "dice": scores["foreground"]["dice"]}
        for c, s in scores["per_class"].items():
            row[f"iou[{c}]"], row[f"dice[{c}]"] = s["iou"], s["dice"]
        if inst:
            m = instance_matching(pred, gt, thresh)
            row.update(precision=m["precision"], recall=m["recall"], f1=m["f1"], ap=average_precision(pred, gt))
        rows.append(row)
    columns = [k for k in _columns(rows) if k != "image"]
    mean = {k: float(np.mean([r[k] for r in rows if k in r])) for k in columns}
    return rows, {"mean": mean, "n": len(rows), "unmatched_pred": only_pred, "unmatched_gt": only_gt}


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    return cols


def format_table(rows: list[dict], summary: dict | None = None, digits: int = 4) -> str:
    """A plain-text table of ``rows`` (missing cells blank), a ``mean`` line and the
    unmatched files when ``summary`` is given."""
    cols = _columns(rows) or ["image"]

    def cell(v) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.{digits}f}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in cols] for r in rows]
    if summary is not None and rows:
        body.append(["mean"] + [cell(summary["mean"].get(c)) for c in cols[1:]])
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
    for b in body:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(b, widths))))
    if summary is not None:
        for side in ("pred", "gt"):
            if summary.get(f"unmatched_{side}"):
                lines.append(f"unmatched in {side}: {', '.join(summary[f'unmatched_{side}'])}")
    return "\n".join(lines)
