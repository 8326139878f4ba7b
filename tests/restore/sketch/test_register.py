"""restore.sketch.register: a reference that shows the sketch's figure is laid over it; one that does not, is not."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from gan.data.tps import augment_self
from restore.cli import main
from restore.sketch.colorizer import Colorizer, psnr, read_rgb, read_sketch
from restore.sketch.extract import luminance, xdog
from restore.sketch.register import MIN_SCORE, align, register, warp_reference
from restore.sketch.scores import away_from_lines, mean_colour_fill, transformed_reference
from tests.restore.sketch.test_sketch import tiny_model

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "sketch"


def _away(truth: np.ndarray, sketch: np.ndarray, colours: np.ndarray) -> float:
    return psnr(colours, truth, away_from_lines(sketch))


def test_a_mirrored_turned_reference_is_laid_back_where_it_belongs():
    truth = read_rgb(EXAMPLES / "dog.png")
    sketch = xdog(truth)
    fill = _away(truth, sketch, mean_colour_fill(truth, truth))
    reg = register(sketch, transformed_reference(truth))
    colours, valid = warp_reference(transformed_reference(truth), reg, sketch.shape)
    assert reg.mirrored and reg.score > 0.9
    assert valid.mean() > 0.85 and _away(truth, sketch, colours) > fill + 10
    identity = register(sketch, truth)
    assert not identity.mirrored and np.allclose(identity.matrix, np.eye(3)[:2], atol=0.02)
    grey = align(sketch, luminance(transformed_reference(truth)))  # a grey reference: RGB colours too
    assert grey is not None and grey.colours.shape == (*sketch.shape, 3)


def test_a_smaller_off_centre_reference_of_another_size_registers():
    truth = read_rgb(EXAMPLES / "ladybug.png")
    sketch = xdog(truth)
    small = np.asarray(Image.fromarray((truth * 255).astype(np.uint8)).resize((150, 150), Image.LANCZOS))
    sheet = np.full((240, 320, 3), 255, np.uint8)  # a wider page, the figure near its right edge
    sheet[60:210, 150:300] = small
    found = align(sketch, sheet)
    assert found is not None and found.registration.matrix[0, 0] > 1.5  # scaled up ~1.7x
    assert _away(truth, sketch, found.colours) > _away(truth, sketch, mean_colour_fill(truth, truth)) + 8


@pytest.mark.parametrize("zoom", [1, 2.5], ids=["256px", "640px: the flow at 512 px"])
def test_flow_follows_a_warped_reference(zoom):
    truth = read_rgb(EXAMPLES / "dog.png")
    if zoom != 1:
        truth = cv2.resize(truth, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC).clip(0, 1)
    sketch = xdog(truth)
    warped = augment_self(truth, torch.Generator().manual_seed(3), jitter=0.04, rotate=10, zoom=(1.0, 1.0))
    rigid, flowed = align(sketch, warped, flow=False), align(sketch, warped)
    assert rigid is not None and flowed is not None
    assert _away(truth, sketch, flowed.colours) > _away(truth, sketch, rigid.colours) + 1


def test_a_sketch_too_small_to_register_is_left_to_the_network():
    art = read_rgb(EXAMPLES / "dog.png")[::20, ::20]  # 13 x 13
    assert align(xdog(art), art) is None


def test_a_reference_of_something_else_is_left_to_the_network():
    sketch = xdog(read_rgb(EXAMPLES / "dog.png"))
    noise = np.random.default_rng(0).random((100, 120, 3)).astype(np.float32)
    for other in (read_rgb(EXAMPLES / "ladybug.png"), read_rgb(EXAMPLES / "monkey.png"), noise):
        assert register(sketch, other).score < MIN_SCORE and align(sketch, other) is None


def test_colorizer_lays_the_line_arts_own_colours_over_it(tmp_path):
    """Hand-drawn line art and its coloured original: with the registration the (untrained, tiny)
    network's colours give way to the original's; ``align=False`` is the network alone."""
    sketch, original = read_sketch(EXAMPLES / "monkey_lineart.png"), read_rgb(EXAMPLES / "monkey.png")
    c = Colorizer(tiny_model(tmp_path / "c.safetensors"))
    result, colours = c.layers(sketch, original)
    alone = c.layers(sketch, original, align=False)[1]
    away = away_from_lines(sketch)
    assert psnr(colours / 255, original, away) > 30 > psnr(alone / 255, original, away) + 10
    lines = sketch < 0.5
    assert np.array_equal(result[lines], np.repeat((sketch[lines] * 255).round().astype(np.uint8)[:, None], 3, 1))
    assert np.array_equal(Colorizer(c.path, align=False).layers(sketch, original)[1], alone)


def test_cli_align_off_is_the_network_alone(tmp_path):
    model = tiny_model(tmp_path / "c.safetensors")
    for align_choice in ("auto", "off"):
        code = main(["sketch", str(EXAMPLES / "monkey_lineart.png"), "--style", str(EXAMPLES / "monkey.png"),
                     "-o", str(tmp_path / align_choice), "--weights", str(model), "--align", align_choice, "--quiet"])
        assert code == 0
    original = read_rgb(EXAMPLES / "monkey.png")
    away = away_from_lines(read_sketch(EXAMPLES / "monkey_lineart.png"))
    score = {a: psnr(read_rgb(tmp_path / a / "monkey_lineart.png"), original, away) for a in ("auto", "off")}
    assert score["auto"] > score["off"] + 10
