"""The one held-out validation split every trainer uses, and the trainers' task-word aliases."""
from __future__ import annotations

import numpy as np
import pytest

from restore.cli import main
from restore.train.holdout import held_out, pick, split_off
from restore.train.seg_data import holdout_indices, split_holdout


def test_every_tenth_item_is_held_out_as_the_trainers_always_did():
    for n in range(2, 45):  # pix2pix, the colorizer and gfpgan: every 10th item, at least one
        k = max(2, min(10, n))
        assert held_out(n) == [i for i in range(n) if i % k == k - 1], n
    assert held_out(2) == [1] and held_out(7) == [6] and held_out(25) == [9, 19]
    assert held_out(0) == held_out(1) == []


def test_segmenter_holds_out_every_kth_image_from_five_on():
    for fraction in (0.2, 0.25, 0.5):
        k = max(2, round(1 / fraction))
        assert holdout_indices(4, fraction) == set()  # too few: a strip of each image instead
        for n in range(max(5, k), 30):
            assert holdout_indices(n, fraction) == set(range(k - 1, n, k)), (n, fraction)
    # fewer images than k (0.1 of 7): the last one, rather than none (which left nothing to score)
    assert holdout_indices(7, 0.1) == {6}


def test_split_off_says_what_it_did(capsys):
    train, val = split_off(5, "faces")
    assert (train, val) == ([0, 1, 2, 3], [4])
    assert "holding out 1 of 5 faces for validation" in capsys.readouterr().out
    train, val = split_off(1, "pairs")
    assert train == val == [0]
    assert "a single training pair, so validation uses it too" in capsys.readouterr().out
    items = list("abcdefghijkl")
    assert pick(items, [9]) == ["j"] and pick(items, [9], keep=False) == [c for c in items if c != "j"]


def test_segmentation_split_keeps_validation_pixels_out_of_training():
    images = [np.full((1, 8, 10), i, np.float32) for i in range(6)]
    masks = [np.full((8, 10), i, np.int64) for i in range(6)]
    (tr_i, tr_m), (va_i, va_m) = split_holdout(images, masks)
    assert [int(m[0, 0]) for m in va_m] == [4] and [int(m[0, 0]) for m in tr_m] == [0, 1, 2, 3, 5]
    (tr_i, tr_m), (va_i, va_m) = split_holdout(images[:2], masks[:2])  # too few: the last fifth of each
    assert [x.shape for x in tr_i] == [(1, 8, 8)] * 2 and [y.shape for y in va_m] == [(8, 2)] * 2


@pytest.mark.parametrize("name, word", [("pix2pix", "translate"), ("colorizer", "sketch"), ("gfpgan", "faces"),
                                        ("segmenter", "segment")])
def test_task_words_are_aliases_of_the_trainers(name, word, capsys):
    texts = []
    for command in (name, word):
        with pytest.raises(SystemExit) as stop:
            main(["train", command, "--help"])
        assert stop.value.code == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and "--out" in texts[0]
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert f"{name} ({word})" in capsys.readouterr().out
