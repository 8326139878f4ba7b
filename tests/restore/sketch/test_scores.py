"""restore.sketch.scores: colour scored away from the lines, the mean-colour fill, lines kept."""
from __future__ import annotations

import numpy as np

from restore.sketch.colorizer import psnr
from restore.sketch.scores import (away_from_lines, background, border_connected, lines_kept, mean_colour_fill,
                                   transformed_reference)


def _art() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 picture: white paper, a red square and a blue square inside black outlines."""
    pic = np.ones((64, 64, 3), np.float32)
    pic[10:30, 10:30] = [0.9, 0.1, 0.1]
    pic[34:54, 34:54] = [0.1, 0.2, 0.9]
    sketch = np.ones((64, 64), np.float32)
    for y0, x0 in ((10, 10), (34, 34)):
        for img in (pic, sketch):
            img[y0:y0 + 20, x0] = 0
            img[y0:y0 + 20, x0 + 19] = 0
            img[y0, x0:x0 + 20] = 0
            img[y0 + 19, x0:x0 + 20] = 0
    return pic, sketch


def test_away_from_lines_keeps_the_margin():
    _, sketch = _art()
    away = away_from_lines(sketch, 3)
    assert not away[10:30, 10:13].any() and not away[8:10, 10:30].any()  # within 3 px of a line
    assert away[20, 20] and away[0, 0] and away[20, 14]


def test_background_is_the_white_around_the_figures_only():
    pic, _ = _art()
    pic[18:22, 18:22] = 1.0  # a white spot inside a figure stays foreground
    bg = background(pic)
    assert bg[0, 0] and bg[32, 5] and not bg[20, 20] and not bg[15, 15]
    mask = np.zeros((64, 64), bool)
    mask[10:30, 10:30] = True
    assert background(pic, mask).sum() == 64 * 64 - 400


def test_mean_colour_fill_and_the_true_colours_beat_it():
    pic, sketch = _art()
    fill = mean_colour_fill(pic, pic)
    assert np.allclose(fill[0, 0], 1) and np.allclose(fill[20, 20], fill[44, 44])
    fg = ~background(pic)
    assert np.allclose(fill[20, 20], pic[fg].mean(axis=0))
    away = away_from_lines(sketch)
    assert psnr(pic, pic, away) == 100.0  # identical: the top score
    swapped = pic.copy()
    swapped[13:27, 13:27], swapped[37:51, 37:51] = pic[37:51, 37:51], pic[13:27, 13:27]  # colours in the wrong regions
    assert psnr(swapped, pic, away) < psnr(fill, pic, away) < 60


def test_border_connected_keeps_only_pieces_touching_the_border():
    region = np.zeros((10, 10), bool)
    region[0, :3] = region[4:6, 4:6] = region[9, 9] = True
    got = border_connected(region)
    assert got[0, :3].all() and got[9, 9] and not got[4:6, 4:6].any() and got.sum() == 4


def test_lines_kept_counts_dark_line_pixels():
    pic, sketch = _art()
    assert lines_kept(sketch, pic) == 1.0
    faded = pic.copy()
    faded[10:30, 10] = 0.8  # one of eight sides washed out
    assert abs(lines_kept(sketch, faded) - (1 - 20 / (sketch < 0.5).sum())) < 1e-6


def test_transformed_reference_lines_up_nowhere_but_keeps_the_colours():
    pic, _ = _art()
    turned = transformed_reference(pic)
    assert turned.shape == pic.shape and turned.min() >= 0 and turned.max() <= 1
    assert not np.allclose(turned[20, 20], pic[20, 20], atol=0.1)  # the red square moved away
    red = (turned[..., 0] > 0.8) & (turned[..., 2] < 0.2)
    assert abs(int(red.sum()) - int(((pic[..., 0] > 0.8) & (pic[..., 2] < 0.2)).sum())) < 80
