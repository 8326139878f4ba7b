"""The napari plugin (restore/segment/napari.yaml), headless: the manifest as npe2 reads it, the
dock widget run in a real viewer (napari's ``make_napari_viewer``, pytest-qt's ``qtbot``) against
``Segmenter`` called directly, the reader on what ``restore segment`` wrote, the sample data."""
from __future__ import annotations

import importlib
import os
import sys
import threading
from importlib import metadata

import numpy as np
import pytest
import tifffile

# Headless before anything makes a QApplication (QT_QPA_PLATFORM=xcb runs them on a display).
if sys.platform.startswith("linux"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

napari = pytest.importorskip("napari")  # the plugin's extra: pip install "unet-restore[napari]"
npe2 = pytest.importorskip("npe2")
pytest.importorskip("pytestqt")

from napari.qt.threading import FunctionWorker

from restore.cli import main
from restore.imageio import read_image
from restore.segment import napari_reader, napari_widget
from restore.segment.overlay import overlay
from restore.segment.segmenter import Segmenter
from tests import ROOT

MANIFEST = ROOT / "restore" / "segment" / "napari.yaml"
EXAMPLE = ROOT / "examples" / "nuclei" / "dsb2018_heldout.png"
TILE = 128  # small tiles keep each run of the bundled model around a second on 2 cores


def _headless_gl() -> None:
    """Qt's offscreen platform has no OpenGL context, so the GL queries napari makes when a layer
    is first drawn come back empty (None, ()) and napari fails on them. Nothing is rendered in these
    tests: answer those queries with what any GL 2 driver offers (no extension, 2048 px textures)
    instead. The same workaround as napari-spatialdata's tests; a no-op where GL answers."""
    gl = importlib.import_module("vispy.gloo.gl")
    queries = {gl.GL_EXTENSIONS: "", gl.GL_MAX_TEXTURE_SIZE: 2048, 32883: 2048}  # 32883: GL_MAX_3D_TEXTURE_SIZE

    def wrap(original):
        def get_parameter(pname):
            try:
                value = original(pname)
            except AttributeError:  # vispy decodes the None of a missing context
                value = None
            return queries[pname] if pname in queries and not value else value
        return get_parameter

    # vispy copies its backend's functions into vispy.gloo.gl when it selects one: wrap them all.
    for name in ("vispy.gloo.gl", "vispy.gloo.gl._gl2", "vispy.gloo.gl._pyopengl2"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # PyOpenGL missing: that backend is never selected
            continue
        if not getattr(module.glGetParameter, "_headless", False):
            module.glGetParameter = wrap(module.glGetParameter)
            module.glGetParameter._headless = True


if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    _headless_gl()


@pytest.fixture(scope="module")
def manifest():
    return npe2.PluginManifest.from_file(MANIFEST)


@pytest.fixture
def plugin(npe2pm):
    """The plugin registered from its manifest file, as its entry point registers it, with a plugin
    manager of its own (npe2's fixture: nothing else discovered, nothing left behind), so napari's
    own open / open_sample paths reach it."""
    with npe2pm.tmp_plugin(manifest=str(MANIFEST)) as registered:
        yield registered


@pytest.fixture(scope="module")
def example():
    return read_image(EXAMPLE)


# -- the manifest -------------------------------------------------------------------------------
def test_manifest_reads_and_its_commands_import(manifest):
    assert manifest.name == "unet-restore" and manifest.display_name
    manifest.validate_imports()  # every python_name resolves
    contrib = manifest.contributions
    ids = {c.id for c in contrib.commands}
    assert {w.command for w in contrib.widgets} | {r.command for r in contrib.readers} <= ids
    assert {s.key for s in contrib.sample_data} == set(napari_reader.SAMPLES)
    (reader,) = contrib.readers
    assert set(reader.filename_patterns) == {"*_mask.png", "*_mask.tif", "*_mask.tiff", "*_mask.ome.zarr",
                                             "*_mask.ome.zarr.zip", "*_mask.ozx", "*_mask.nii", "*_mask.nii.gz"}


def test_entry_point_finds_the_manifest():
    """The installed package announces the manifest (pyproject's napari.manifest entry point)."""
    eps = [ep for ep in metadata.entry_points(group="napari.manifest") if ep.name == "unet-restore"]
    assert eps, "no napari.manifest entry point: pyproject.toml, then pip install -e ."
    found = npe2.PluginManifest.from_distribution("unet-restore")
    assert found.name == "unet-restore" and found.display_name == "U-Net restore"


# -- the dock widget ----------------------------------------------------------------------------
def test_widget_runs_in_a_worker_and_adds_the_segmenters_labels(make_napari_viewer, qtbot, example, monkeypatch):
    threads = []
    real = napari_widget.segment_layer
    monkeypatch.setattr(napari_widget, "segment_layer", lambda *a, **k: (threads.append(threading.get_ident()),
                                                                         real(*a, **k))[1])
    viewer = make_napari_viewer()
    image = viewer.add_image(example, name="cells", scale=(0.5, 0.25), translate=(10.0, -4.0))
    widget = napari_widget.segment_widget()
    viewer.window.add_dock_widget(widget)
    assert widget.image.value is image  # the selected image layer is offered
    assert "nuclei" in widget.model.choices
    widget.tile.value, widget.instances.value = TILE, True

    worker = widget()  # the call button's call: the values shown
    assert isinstance(worker, FunctionWorker) and worker.pbar.total == 0  # an indeterminate progress bar
    assert "cells labels" not in viewer.layers and not threads  # returned at once; the work comes later
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: "cells labels" in viewer.layers, timeout=10_000)
    assert threads and threads[0] != threading.get_ident()  # segmented in a worker thread, not Qt's
    labels = viewer.layers["cells labels"]
    assert isinstance(labels, napari.layers.Labels)
    expected = Segmenter(tile=TILE)(example, instances=True)
    np.testing.assert_array_equal(labels.data, expected)
    assert labels.data.max() > 5  # nuclei were found
    np.testing.assert_array_equal(labels.scale, image.scale)
    np.testing.assert_array_equal(labels.translate, image.translate)


def test_second_run_reuses_the_model_and_updates_the_layer(make_napari_viewer, qtbot, example, monkeypatch):
    made = []

    class Counted(Segmenter):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(napari_widget, "_segmenters", {})
    monkeypatch.setattr("restore.segment.segmenter.Segmenter", Counted)  # what the widget loads
    viewer = make_napari_viewer()
    crop = example[:64, :64]
    viewer.add_image(crop, name="crop")
    widget = napari_widget.segment_widget()
    viewer.window.add_dock_widget(widget)
    widget.tile.value, widget.diameter.value, widget.device.value = 64, "none", "cpu"
    runs = []
    for min_size in (16, 400):  # the second run removes the objects under 400 px
        widget.min_size.value = min_size
        with qtbot.waitSignal(widget().returned, timeout=60_000):
            pass
        qtbot.waitUntil(lambda: "crop labels" in viewer.layers, timeout=10_000)
        expected = Segmenter(tile=64, diameter=None)(crop, min_size=min_size)
        runs.append(expected)
        qtbot.waitUntil(lambda want=expected: np.array_equal(viewer.layers["crop labels"].data, want),
                        timeout=10_000)
    assert not np.array_equal(*runs)  # the layer now holds the second run's labels
    assert [layer.name for layer in viewer.layers] == ["crop", "crop labels"]  # updated, not added again
    assert len(made) == 1  # loaded once for both runs


def test_segment_layer_rgb_and_volume():
    """An RGB layer goes in channels last; a stack of slices through a 2D model slice by slice;
    both are what Segmenter itself gives."""
    rng = np.random.default_rng(0)
    grey = read_image(EXAMPLE)[:64, :64]
    rgb = napari.layers.Image(np.repeat(grey[..., None], 3, axis=-1), rgb=True, name="rgb")
    data, meta, kind = napari_widget.segment_layer(rgb, tile=64, diameter=None)
    assert kind == "labels" and meta["name"] == "rgb labels" and data.shape == grey.shape
    np.testing.assert_array_equal(data, Segmenter(tile=64, diameter=None)(rgb.data))
    stack = np.stack([grey, np.clip(grey + rng.integers(0, 9, grey.shape), 0, 255).astype(np.uint8)])
    vol = napari.layers.Image(stack, scale=(2.0, 0.5, 0.5), name="vol")
    data, meta, _ = napari_widget.segment_layer(vol, tile=64, diameter=None, instances=True)
    assert data.shape == stack.shape and meta["scale"] == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(data, Segmenter(tile=64, diameter=None)(stack, instances=True))


def test_widget_opens_from_the_plugins_menu(make_napari_viewer, plugin):
    """The manifest's widget contribution, opened as napari opens it (Plugins > U-Net restore)."""
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((32, 32), np.uint8), name="blank")
    _, widget = viewer.window.add_plugin_dock_widget("unet-restore", "Segment (U-Net)")
    assert widget.image.value is image and widget.call_button.text == "Run"
    assert [w.name for w in widget] == ["image", "model", "weights_file", "diameter", "tile", "instances",
                                        "min_size", "fill_holes", "device", "call_button"]


def test_widget_weights_file_overrides_the_model(make_napari_viewer, qtbot, tmp_path):
    """A .safetensors file of this toolkit (here a tiny random U-Net) runs instead of the bundled model."""
    import torch

    from gan import UNet, save_model, segmenter_config

    torch.manual_seed(0)
    weights = save_model(UNet(segmenter_config("tiny")), tmp_path / "tiny.safetensors", {"diameter": 0})
    image = np.random.default_rng(1).integers(0, 255, (40, 48), dtype=np.uint8)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="noise")
    widget = napari_widget.segment_widget()
    viewer.window.add_dock_widget(widget)
    widget.weights_file.value, widget.tile.value, widget.min_size.value = weights, 32, 0
    with qtbot.waitSignal(widget().returned, timeout=60_000) as returned:
        pass
    data, meta, _ = returned.args[0]
    assert meta["metadata"]["restore"]["weights"] == str(weights)
    np.testing.assert_array_equal(data, Segmenter(weights=weights, tile=32)(image, min_size=0))
    qtbot.waitUntil(lambda: "noise labels" in viewer.layers, timeout=10_000)


def test_widget_refuses_a_bad_diameter_before_starting(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((32, 32), np.uint8))
    widget = napari_widget.segment_widget()
    viewer.window.add_dock_widget(widget)
    widget.diameter.value = "-3"
    with pytest.raises(ValueError, match="diameter"):
        widget()


# -- the reader ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmented(tmp_path_factory):
    """What ``restore segment --instances`` writes for a 2D image and a 4-slice TIFF volume."""
    src, out = tmp_path_factory.mktemp("in"), tmp_path_factory.mktemp("out")
    grey = read_image(EXAMPLE)[:64, :64]
    (src / "cells.png").write_bytes(EXAMPLE.read_bytes())
    tifffile.imwrite(src / "stack.tif", np.stack([grey, grey[::-1], grey[:, ::-1], grey.T]), photometric="minisblack")
    argv = ["segment", str(src), "-o", str(out), "--instances", "--tile", "64", "--quiet", "--no-pipeline"]
    assert main(argv) == 0
    return src, out


def test_reader_opens_a_mask_with_its_overlay(segmented):
    src, out = segmented
    mask = out / "cells_mask.png"
    reader = napari_reader.get_reader(str(mask))
    assert reader is not None
    assert napari_reader.get_reader(str(src / "cells.png")) is None  # not a mask: another reader's
    (ov, ov_meta, ov_kind), (lab, lab_meta, lab_kind) = reader(str(mask))
    assert (lab_kind, lab_meta["name"]) == ("labels", "cells_mask")  # the name napari gives the file
    np.testing.assert_array_equal(lab, read_image(mask))
    assert lab.dtype == np.uint16 and lab.max() > 5
    assert (ov_kind, ov_meta["name"], ov_meta["rgb"]) == ("image", "cells_overlay", True)
    np.testing.assert_array_equal(ov, overlay(read_image(src / "cells.png"), lab))


def test_reader_puts_a_volumes_overlay_at_its_slice(segmented):
    src, out = segmented
    (ov, ov_meta, _), (lab, _, kind) = napari_reader.read_masks(str(out / "stack_mask.tif"))
    assert kind == "labels" and lab.shape == (4, 64, 64)
    # All four slices: restore.imageio would read this mask as one RGB page (write_tiff stores a
    # stack of 3 or 4 as one planar page); the reader takes tifffile's raw array.
    np.testing.assert_array_equal(lab, Segmenter(tile=64)(tifffile.imread(src / "stack.tif"), instances=True))
    assert ov.shape == (1, 64, 64, 3) and ov_meta["translate"] == (2, 0, 0)


def test_reader_without_overlay_and_through_napari(segmented, make_napari_viewer, plugin, tmp_path):
    _, out = segmented
    alone = tmp_path / "alone_mask.png"
    alone.write_bytes((out / "cells_mask.png").read_bytes())
    ((_, meta, kind),) = napari_reader.read_masks(str(alone))
    assert kind == "labels" and meta["name"] == "alone_mask"
    viewer = make_napari_viewer()
    layers = viewer.open(out / "cells_mask.png", plugin="unet-restore")
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels"]
    assert [layer.name for layer in viewer.layers] == ["cells_overlay", "cells_mask"]


def test_reader_opens_volume_masks_at_their_voxel_size(make_napari_viewer, plugin, tmp_path):
    """The masks of volumes done block by block: an OME-Zarr labels image (lazily, its pyramid's
    levels) and a NIfTI mask, each at the voxel size the input said, with the overlay's plane."""
    import nibabel as nib
    import zarr
    from ome_zarr.writer import write_image

    rng = np.random.default_rng(0)
    image = (rng.normal(300, 30, (4, 40, 40)) + 2000 * (rng.random((4, 40, 40)) > 0.9)).astype(np.uint16)
    src = tmp_path / "in"
    write_image(image, zarr.open_group(src / "v.ome.zarr", mode="w"), axes="zyx", scale_factors=[],
                scale={"z": 2.0, "y": 0.5, "x": 0.5})
    nib.save(nib.Nifti1Image(image.transpose(2, 1, 0), np.diag([0.5, 0.5, 2.0, 1.0])), src / "v.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(src), "-o", str(out), "--tile", str(TILE), "--diameter", "none", "--quiet"]) == 0
    viewer = make_napari_viewer()
    for name in ("v_mask.ome.zarr", "v_mask.nii.gz"):
        assert napari_reader.get_reader(str(out / name)) is not None
        layers = viewer.open(out / name, plugin="unet-restore")
        assert [type(layer).__name__ for layer in layers] == ["Image", "Labels"]
        labels = layers[-1]
        assert labels.name.split(" [")[0] == "v_mask" and tuple(labels.scale) == pytest.approx((2.0, 0.5, 0.5))
        assert np.asarray(labels.data).shape == (4, 40, 40)
        assert tuple(layers[0].translate)[0] == pytest.approx(4.0)  # the middle plane (2) at 2.0 apart


# -- sample data --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(napari_reader.SAMPLES))
def test_sample_data_reads_the_example(key):
    spec = napari_reader.SAMPLES[key]
    ((data, meta, kind),) = getattr(napari_reader, f"sample_{key}")()
    assert kind == "image" and meta["name"] == spec["file"].removesuffix(".png")
    np.testing.assert_array_equal(data, read_image(ROOT / "examples" / "nuclei" / spec["file"]))


def test_sample_opens_in_napari(make_napari_viewer, plugin):
    viewer = make_napari_viewer()
    viewer.open_sample("unet-restore", "cells3d")
    (layer,) = viewer.layers
    assert layer.name == "cells3d_z34_heldout" and layer.data.dtype == np.uint16
    np.testing.assert_allclose(layer.scale, (0.26, 0.26))
