"""IoU / Dice, instance matching and folder evaluation."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from restore.segment.scores import (average_precision, dice, evaluate_folders, format_table, instance_matching,
                                    iou, match_files, read_labels, segmentation_scores)


def test_iou_dice_by_hand():
    pred = np.array([[1, 1, 0],
                     [0, 2, 2]])
    gt = np.array([[1, 0, 0],
                   [1, 2, 0]])
    # class 1: pred {00,01}, gt {00,10}: inter 1, union 3
    assert iou(pred, gt, 1) == pytest.approx(1 / 3) and dice(pred, gt, 1) == pytest.approx(2 / 4)
    # class 2: pred {11,12}, gt {11}: inter 1, union 2
    assert iou(pred, gt, 2) == pytest.approx(1 / 2) and dice(pred, gt, 2) == pytest.approx(2 / 3)
    # absent from both: 1.0 by convention; absent from one side only: 0
    assert iou(pred, gt, 3) == 1.0 and dice(pred, gt, 3) == 1.0
    assert iou(pred, np.zeros_like(gt), 1) == 0.0 and dice(np.zeros_like(pred), gt, 1) == 0.0
    empty = np.zeros((4, 4), np.uint8)
    s = segmentation_scores(empty, empty)
    assert s["foreground"] == {"iou": 1.0, "dice": 1.0} and s["per_class"] == {}


def test_segmentation_scores_foreground_and_classes():
    pred = np.array([[1, 1, 0],
                     [0, 2, 2]])
    gt = np.array([[1, 0, 0],
                   [1, 2, 0]])
    s = segmentation_scores(pred, gt)
    # foreground: pred {00,01,11,12}, gt {00,10,11}: inter 2, union 5
    assert s["foreground"]["iou"] == pytest.approx(2 / 5)
    assert s["foreground"]["dice"] == pytest.approx(4 / 7)
    assert set(s["per_class"]) == {1, 2} and s["per_class"][2]["iou"] == pytest.approx(0.5)
    s4 = segmentation_scores(pred, gt, num_classes=4)
    assert set(s4["per_class"]) == {1, 2, 3} and s4["per_class"][3]["iou"] == 1.0
    # instance maps with different ids for the same objects compare equal as foreground
    a = np.zeros((6, 6), np.uint16)
    a[1:3, 1:3], a[4:6, 4:6] = 7, 300
    b = np.where(a == 7, 1, np.where(a == 300, 2, 0))
    assert segmentation_scores(a, b, per_class=False)["foreground"]["iou"] == 1.0
    with pytest.raises(ValueError, match=r"prediction \(2, 3\) and ground truth \(2, 2\) differ in shape"):
        segmentation_scores(pred, gt[:, :2])


def test_scores_3d():
    pred = np.zeros((2, 3, 3), np.uint8)
    gt = np.zeros((2, 3, 3), np.uint8)
    pred[0, :2, :2] = 1     # 4 voxels
    gt[:, :2, :2] = 1       # 8 voxels
    assert segmentation_scores(pred, gt)["per_class"][1]["iou"] == pytest.approx(0.5)


def test_instance_matching():
    gt = np.zeros((10, 20), np.uint16)
    gt[1:5, 1:5] = 1        # 16 px
    gt[1:5, 8:12] = 2       # 16 px
    gt[6:9, 15:18] = 3      # missed
    pred = np.zeros_like(gt)
    pred[1:5, 1:5] = 40     # exact
    pred[1:5, 9:12] = 41    # 12 / 16 = 0.75
    pred[7:9, 1:3] = 42     # false positive
    m = instance_matching(pred, gt)
    assert (m["tp"], m["fp"], m["fn"], m["n_true"], m["n_pred"]) == (2, 1, 1, 3, 3)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["accuracy"] == pytest.approx(2 / 4)
    assert m["mean_matched_iou"] == pytest.approx((1 + 0.75) / 2)
    assert instance_matching(pred, gt, 0.8)["tp"] == 1
    # DSB2018: thresholds 0.5..0.95; the exact match counts at all 10, the 0.75 one at 6
    expected = np.mean([2 / 4] * 6 + [1 / 5] * 4)
    assert average_precision(pred, gt) == pytest.approx(expected)
    empty = np.zeros_like(gt)
    e = instance_matching(empty, empty)
    assert e["f1"] == 1.0 and e["tp"] == 0
    assert instance_matching(empty, gt)["recall"] == 0.0


def test_instance_matching_low_threshold_uses_assignment():
    # one gt covered by two halves: at IoU 0.3 only one of them may match it
    gt = np.zeros((4, 8), np.uint16)
    gt[:, :8] = 1
    pred = np.zeros_like(gt)
    pred[:, :4], pred[:, 4:] = 1, 2
    m = instance_matching(pred, gt, thresh=0.3)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 0)
    # greedy (best IoU first) would pair P with A (0.43) and leave Q and B alone; the
    # assignment pairs P-B (0.4) and Q-A (0.4)
    gt = np.zeros((1, 14), np.uint16)
    gt[0, :10], gt[0, 10:] = 1, 2          # A, B
    pred = np.zeros_like(gt)
    pred[0, 4:], pred[0, :4] = 1, 2        # P, Q
    m = instance_matching(pred, gt, thresh=0.35)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 0, 0)
    assert m["mean_matched_iou"] == pytest.approx(0.4)


def test_read_labels_variants(tmp_path):
    Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).save(tmp_path / "bin.png")
    assert read_labels(tmp_path / "bin.png").tolist() == [[0, 1], [1, 0]]
    lab16 = np.array([[0, 1000], [2, 0]], np.uint16)
    Image.fromarray(lab16).save(tmp_path / "inst.png")
    assert np.array_equal(read_labels(tmp_path / "inst.png"), lab16)
    tifffile.imwrite(tmp_path / "vol.tif", np.arange(8, dtype=np.uint16).reshape(2, 2, 2))
    assert read_labels(tmp_path / "vol.tif").shape == (2, 2, 2)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8) + 2).save(tmp_path / "grey_rgb.png")
    assert read_labels(tmp_path / "grey_rgb.png").shape == (2, 2)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour masks are not label maps"):
        read_labels(tmp_path / "colour.png")


def test_evaluate_folders_matches_mask_suffix(tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    a = np.zeros((4, 4), np.uint8)
    a[:2, :2] = 1
    b = np.zeros((4, 4), np.uint8)
    b[:2, :] = 1
    Image.fromarray(a).save(pred_dir / "x_mask.png")          # x: perfect
    Image.fromarray(a * 255).save(pred_dir / "x_overlay.png") # ignored
    Image.fromarray(a).save(gt_dir / "x.png")
    Image.fromarray(a).save(pred_dir / "y_mask.png")          # y: iou 4/8
    tifffile.imwrite(gt_dir / "y_mask.tif", b)
    Image.fromarray(a).save(pred_dir / "z_mask.png")          # z: no ground truth
    Image.fromarray(b).save(gt_dir / "w.png")                 # w: no prediction
    pairs, only_pred, only_gt = match_files(pred_dir, gt_dir)
    assert [(k, p.name, g.name) for k, p, g in pairs] == [("x", "x_mask.png", "x.png"),
                                                          ("y", "y_mask.png", "y_mask.tif")]
    rows, summary = evaluate_folders(pred_dir, gt_dir)
    assert [r["image"] for r in rows] == ["x", "y"]
    assert rows[0]["iou"] == 1.0 and rows[1]["iou"] == pytest.approx(0.5)
    assert rows[1]["dice"] == pytest.approx(2 * 4 / 12) and rows[1]["iou[1]"] == pytest.approx(0.5)
    assert summary["mean"]["iou"] == pytest.approx(0.75) and summary["n"] == 2
    assert summary["unmatched_pred"] == ["z"] and summary["unmatched_gt"] == ["w"]
    table = format_table(rows, summary)
    lines = table.splitlines()
    assert lines[0].split() == ["image", "iou", "dice", "iou[1]", "dice[1]"]
    assert lines[3].split()[:2] == ["mean", "0.7500"]
    assert "unmatched in pred: z" in table and "unmatched in gt: w" in table


def test_evaluate_folders_instances(tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = np.zeros((12, 12), np.uint16)
    gt[1:5, 1:5], gt[6:10, 6:10] = 1, 2
    pred = np.zeros_like(gt)
    pred[1:5, 1:5] = 5
    tifffile.imwrite(gt_dir / "cells.tif", gt)
    Image.fromarray(pred).save(pred_dir / "cells_mask.png")  # 16-bit PNG: an instance map
    rows, summary = evaluate_folders(pred_dir, gt_dir)
    r = rows[0]
    assert "iou[1]" not in r and r["precision"] == 1.0 and r["recall"] == 0.5
    assert r["iou"] == pytest.approx(0.5) and r["ap"] == pytest.approx(0.5)
    assert "ap" in format_table(rows, summary).splitlines()[0]
    rows, _ = evaluate_folders(pred_dir, gt_dir, instances=False)
    assert "iou[1]" in rows[0] and "f1" not in rows[0]


def _dense_reference(pred, gt, thresh):
    """Brute force: the full IoU matrix and one assignment, as stardist does it."""
    from scipy.optimize import linear_sum_assignment
    g_ids, p_ids = np.unique(gt[gt > 0]), np.unique(pred[pred > 0])
    score = np.zeros((len(g_ids), len(p_ids)))
    for i, g in enumerate(g_ids):
        for j, p in enumerate(p_ids):
            a, b = gt == g, pred == p
            score[i, j] = (a & b).sum() / (a | b).sum()
    if score.size == 0:
        return 0
    n = max(score.shape)
    r, c = linear_sum_assignment(-(score >= thresh).astype(float) - score / (2 * n))
    return int((score[r, c] >= thresh).sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_instance_matching_agrees_with_brute_force(seed):
    rng = np.random.default_rng(seed)

    def random_labels():
        lab = np.zeros((40, 40), np.uint16)
        yy, xx = np.mgrid[:40, :40]
        for k in range(1, 12):
            cy, cx, r = rng.integers(0, 40), rng.integers(0, 40), rng.integers(2, 7)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k * 3  # later discs paint over
        return lab

    gt, pred = random_labels(), random_labels()
    pred[rng.random(pred.shape) < 0.1] = 0
    pred = np.where(pred > 0, pred, gt)  # keep overlaps plentiful
    for t in (0.1, 0.3, 0.5, 0.7):
        assert instance_matching(pred, gt, t)["tp"] == _dense_reference(pred, gt, t)


def test_class_map_against_instance_truth_is_scored_on_foreground(tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = np.zeros((12, 12), np.uint16)
    gt[1:5, 1:5], gt[6:10, 6:10] = 1, 2
    tifffile.imwrite(gt_dir / "cells.tif", gt)
    Image.fromarray((gt > 0).astype(np.uint8)).save(pred_dir / "cells_mask.png")  # a class map
    (row,) = evaluate_folders(pred_dir, gt_dir)[0]
    assert row["iou"] == 1.0 and "precision" not in row and "iou[1]" not in row


def test_lpips_only_with_its_backbone(tmp_path):
    import torch
    import torchvision

    from restore.quality import lpips_metric

    model, note = lpips_metric(tmp_path)
    assert model is None and "LPIPS off" in note
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "checkpoints" / "alexnet-owt-7be5be79.pth")
    model, note = lpips_metric(tmp_path)
    assert model is not None and "AlexNet from" in note
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert float(model(x, x)) == 0.0 and float(model(x, -x)) > 0.0
