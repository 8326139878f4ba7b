"""TrainConfig's sections and task words, the task objects the loop looks up, and configs of the
earlier flat layout: built by keyword, read from old checkpoints, resumed from."""
from __future__ import annotations

import ast
import inspect
import json
from dataclasses import fields, replace

import numpy as np
import pytest
import torch

from gan.data.batches import PairBatches
from gan.presets import PATCHGAN_PRESETS, PIX2PIX_PRESETS
from gan.serialize import load_model
from gan.tasks import TASKS as TASK_WORDS
from gan.train import loop
from gan.train.checkpoint import load_checkpoint, save_checkpoint
from gan.train.config import (OPTIONS, FaceConfig, FacesOptions, SegmentOptions, SketchOptions, TrainConfig,
                              TranslateOptions, UpscaleOptions)
from gan.train.trainers import TRAINERS

# What the previous version wrote in a segmentation checkpoint (its log's "config" line, verbatim).
OLD_SEGMENT = {
    "task": "segment", "arch": "UNet", "model": {"in_channels": 1, "out_channels": 2, "base_channels": 8, "depth": 2,
                                                 "dims": 2, "kind": "plain", "padding": "same", "norm": "batch",
                                                 "dropout": 0.0, "multires_alpha": 1.67},
    "disc_arch": "", "disc": {}, "steps": 4, "batch_size": 2, "lr": 0.001, "lr_d": 0.0, "betas": [0.9, 0.999],
    "net_betas": {}, "weight_decay": 0.0001, "warmup": 0, "loss": "dice_ce", "gan_loss": "vanilla", "gan_weight": 1.0,
    "l1_weight": 100.0, "perceptual_weight": 0.0, "r1_weight": 0.0, "r1_every": 16, "guide_weights": [0.3, 0.9],
    "aux_weight": 1.0, "face": {}, "ema": 0.0, "amp": False, "channels_last": True, "fused": True,
    "loader_threads": 1, "val_every": 2, "image_every": 200, "log_every": 10, "seed": 0}
# Every section field of the flat layout, at its old default.
OLD_FLAT_DEFAULTS = {k: v for k, v in OLD_SEGMENT.items() if k in (
    "disc_arch", "disc", "loss", "gan_loss", "gan_weight", "l1_weight", "perceptual_weight", "r1_weight", "r1_every",
    "guide_weights", "aux_weight", "face")}
OLD_WORDS = {"segment": "segment", "translate": "gan", "sketch": "colorize", "faces": "gfpgan"}


def old_layout(cfg: TrainConfig) -> dict:
    """``cfg`` as the previous version saved it: one flat dict, every task's fields, old task word."""
    d = cfg.to_dict()
    section = d.pop("options")
    return {**d, **OLD_FLAT_DEFAULTS, **section, "task": OLD_WORDS[cfg.task]}


def test_every_trainable_task_has_a_trainer_and_a_section():
    assert set(TRAINERS) == set(OPTIONS) == set(TASK_WORDS)
    assert TRAINERS["segment"].export_name == "model.safetensors"
    assert {TRAINERS[t].export_name for t in ("translate", "sketch", "faces", "upscale")} == {"generator.safetensors"}


def test_the_loop_never_branches_on_the_task():
    """``train`` reads top to bottom: no comparison and no lookup keyed by the task's name
    beyond the one that finds its trainer."""
    tree = ast.parse(inspect.getsource(loop))
    uses = [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "task"]
    compared = [node for node in ast.walk(tree) if isinstance(node, ast.Compare)
                and any(isinstance(n, ast.Attribute) and n.attr == "task" for n in ast.walk(node))]
    assert not compared
    lookups = [node for node in ast.walk(tree) if isinstance(node, ast.Subscript)
               and isinstance(node.slice, ast.Attribute) and node.slice.attr == "task"]
    assert all(isinstance(n.value, ast.Name) and n.value.id == "TRAINERS" for n in lookups)
    assert len(uses) == len(lookups) + 1  # the lookups, and the metadata's "task" word


@pytest.mark.parametrize("old, new", [("gan", "translate"), ("colorize", "sketch"), ("gfpgan", "faces"),
                                      ("segmentation", "segment"), ("translation", "translate"),
                                      ("colorization", "sketch"), ("face restoration", "faces"),
                                      ("segment", "segment")])
def test_old_task_words_are_read(old, new):
    cfg = TrainConfig(task=old)
    assert cfg.task == new and type(cfg.options) is OPTIONS[new]


def test_unknown_or_untrainable_task_is_refused():
    for word in ("nope",):
        with pytest.raises(ValueError, match="task must be one of"):
            TrainConfig(task=word)
    with pytest.raises(TypeError, match="takes SketchOptions"):
        TrainConfig(task="sketch", options=TranslateOptions())
    with pytest.raises(TypeError, match="unexpected"):
        TrainConfig(stepz=3)


def test_sections_validate_their_fields():
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(task="segment", options=SegmentOptions(loss="nope"))
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(task="segment", loss="nope")  # the flat spelling, as before
    with pytest.raises(ValueError, match="unknown GAN loss"):
        TrainConfig(task="translate", gan_loss="nope")
    with pytest.raises(ValueError, match="unknown component GAN loss"):
        FacesOptions(face={"component_gan_loss": "nope"})


def test_flat_keywords_go_into_the_section():
    """The earlier flat layout's keywords and reads keep working."""
    cfg = TrainConfig(task="gan", disc_arch="PatchDiscriminator", gan_weight=0.5, r1_weight=1.0, steps=9)
    assert cfg.options == TranslateOptions(disc_arch="PatchDiscriminator", gan_weight=0.5, r1_weight=1.0)
    assert cfg.steps == 9 and cfg.gan_weight == 0.5 and cfg.disc_arch == "PatchDiscriminator"
    assert cfg == TrainConfig(task="translate", steps=9, options=cfg.options)
    # another task's fields, which the flat layout carried for every task, are ignored, as they always were
    assert TrainConfig(task="segment", gan_weight=3.0, face={"eye_size": 4}).options == SegmentOptions()
    with pytest.raises(AttributeError, match=r"has no attribute 'gan_weight'"):
        TrainConfig(task="segment").gan_weight
    faces = TrainConfig(task="gfpgan", face={"pyramid_until": 7}, l1_weight=0.1)
    assert faces.options.face == FaceConfig(pyramid_until=7) and faces.options.l1_weight == 0.1
    sketch = TrainConfig(task="colorize", options=SketchOptions(aux_weight=0.0), guide_weights=[0.1, 0.2])
    assert sketch.options == SketchOptions(aux_weight=0.0, guide_weights=(0.1, 0.2))  # flat overrides the section
    assert replace(cfg, gan_weight=0.0).options.gan_weight == 0.0 and replace(cfg, lr=1.0).options == cfg.options


@pytest.mark.parametrize("task", sorted(OPTIONS))
def test_saved_form_round_trips_and_old_flat_dicts_read_the_same(task):
    options = {"segment": SegmentOptions(loss="wce"),
               "translate": TranslateOptions(disc_arch="PatchDiscriminator", disc={"n_layers": 2}, r1_weight=1.0),
               "sketch": SketchOptions(gan_weight=0.0, guide_weights=(0.1, 0.0)),
               "faces": FacesOptions(l1_weight=0.1, face=FaceConfig(component={"x": 1}, fix_decoder=True)),
               "upscale": UpscaleOptions(stage="net", disc={"num_feat": 8})}[task]
    cfg = TrainConfig(task=task, arch="A", model={"k": [1, 2]}, betas=(0.5, 0.99), net_betas={"D": (0.0, 0.9)},
                      steps=3, options=options)
    saved = cfg.to_dict()
    assert saved["task"] == task and json.loads(json.dumps(saved)) == saved  # JSON, as files hold it
    assert set(saved["options"]) == {f.name for f in fields(OPTIONS[task])}
    assert TrainConfig.from_dict(saved) == cfg
    if task not in OLD_WORDS:  # a task newer than the flat layout
        return
    old = old_layout(cfg)
    assert "options" not in old and old["task"] == OLD_WORDS[task]
    assert TrainConfig.from_dict(old) == cfg
    assert TrainConfig.from_dict({**old, "a_field_long_gone": 1}) == cfg


def test_a_checkpoint_the_previous_version_wrote_reads_as_today():
    cfg = TrainConfig.from_dict(OLD_SEGMENT)
    assert cfg.task == "segment" and cfg.options == SegmentOptions() and cfg.betas == (0.9, 0.999)
    assert cfg.steps == 4 and cfg.val_every == 2 and cfg.model["base_channels"] == 8
    assert loop.saved_config(OLD_SEGMENT) == cfg.to_dict()
    assert loop.saved_config({"task": "nope"}) is None


def photo(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    img = np.stack([np.sin(3 * xx + rng.random() * 6), np.cos(4 * yy + rng.random() * 6), xx * yy], -1)
    return ((img - img.min()) / np.ptp(img) * 255).astype(np.uint8)


def test_resume_from_an_old_layout_checkpoint_is_exact(tmp_path):
    """A run whose checkpoint holds the previous version's flat config (task "gan") resumes
    without a warning and ends with the weights of an uninterrupted run."""
    torch.set_num_threads(1)
    options = TranslateOptions(disc_arch="PatchDiscriminator", disc=PATCHGAN_PRESETS["tiny"].to_dict(),
                               r1_weight=1.0, r1_every=2)
    cfg = TrainConfig(task="translate", arch="UNetGenerator", model=PIX2PIX_PRESETS["tiny"].to_dict(), steps=6,
                      batch_size=2, lr=2e-3, warmup=1, val_every=3, ema=0.9, options=options)

    def batches():
        return PairBatches([(None, photo(i)) for i in range(2)], 32, 2, seed=3, degrade=lambda x, s: x * 0.6)

    quiet = dict(progress=False, log=lambda s: None)
    loop.train(cfg, batches(), tmp_path / "whole", **quiet)
    cut = batches()  # the same run, cut after its step-3 checkpoint
    real = cut.batch

    class Stop(Exception):
        pass

    def crash_at_4(step):
        if step == 4:
            raise Stop
        return real(step)

    cut.batch = crash_at_4
    with pytest.raises(Stop):
        loop.train(cfg, cut, tmp_path / "cut", **quiet)
    state = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert state["step"] == 3
    state["config"] = old_layout(cfg)  # as the previous version wrote it
    assert state["config"]["task"] == "gan" and "options" not in state["config"]
    save_checkpoint(tmp_path / "cut" / "checkpoint.pt", state)
    logs: list[str] = []
    loop.train(cfg, batches(), tmp_path / "cut", resume=True, progress=False, log=logs.append)
    assert any("resumed" in line and "step 3" in line for line in logs), logs
    assert not any("differs" in line for line in logs), logs
    a, meta = load_model(tmp_path / "whole" / "last.safetensors")
    b, _ = load_model(tmp_path / "cut" / "last.safetensors")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert meta["task"] == "translate" and TrainConfig.from_dict(meta["train_config"]) == cfg
    # a config that really differs still says so
    state["config"] = {**old_layout(cfg), "lr": 1.0}
    save_checkpoint(tmp_path / "cut" / "checkpoint.pt", state)
    logs.clear()
    loop.train(cfg, batches(), tmp_path / "cut", resume=True, progress=False, log=logs.append)
    assert any("differs" in line for line in logs), logs
