"""``restore.ray.FaceRestorerUDF`` and ``SegmenterUDF`` in a pipeline of one's own, fed by
``ray.data.read_images``: the same pixels as the Python API on this machine."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import ray
import torch

from restore.faces.restorer import FaceRestorer
from restore.imageio import read_image
from restore.segment.segmenter import Segmenter
from tests import ROOT
from tests.restore.faces.test_pipeline import photo_folder


@pytest.mark.parametrize("model", ["weights", "gfpgan_weights"])
def test_face_restorer_udf_gives_the_api_s_pixels(cluster, model, request, tmp_path):
    """The tiny restorer, and a GFP-GAN: a face network whose last float bits depend on how many
    faces share a call (the batch's 4 faces in calls of 3 and 1 unless they are filled up)."""
    weights = request.getfixturevalue(model)
    src = photo_folder(tmp_path / "all")
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    for name in ("a.png", "b.jpg", "c_two.png", "f_wall.png"):  # RGB photos (read_images cannot skip bad files)
        shutil.copy(src / name, rgb / name)
    options = {"weights": weights, "tile": 64, "precision": "fp32", "batch_size": 3,
               "bg": "restorer" if model == "weights" else "resize"}
    from restore.ray import FaceRestorerUDF

    ds = ray.data.read_images(str(rgb), mode="RGB", include_paths=True)
    rows = ds.map_batches(FaceRestorerUDF, fn_constructor_kwargs=options, batch_size=4,
                          compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1).take_all()
    assert len(rows) == 4
    fr = FaceRestorer(**options)
    fr.fixed_batch = True
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the actor's one CPU
    try:
        for row in rows:
            expected = fr.restore(read_image(row["path"]))
            assert np.array_equal(row["image"], expected.image), row["path"]
            faces = json.loads(row["faces"])
            assert len(faces) == len(expected.faces) == {"a.png": 1, "b.jpg": 1, "c_two.png": 2,
                                                          "f_wall.png": 0}[row["path"].rsplit("/", 1)[1]]
    finally:
        torch.set_num_threads(old)


def test_face_restorer_udf_fills_up_every_network_call(gfpgan_weights, gfpgan_calls, tmp_path):
    """The UDF itself, in this process: the faces of a batch's photos go through the network in
    calls of exactly ``batch_size`` (the last filled up), which is what makes a photo's bytes
    independent of the batch it landed in (a face alone in a call can differ in a grey level)."""
    from restore.ray import FaceRestorerUDF

    calls = gfpgan_calls
    src = photo_folder(tmp_path / "all")
    names = ["a.png", "b.jpg", "c_two.png", "f_wall.png"]  # 1 + 1 + 2 + 0 faces
    images = [read_image(src / name) for name in names]
    options = {"tile": 64, "precision": "fp32", "batch_size": 3, "bg": "resize"}
    rows = FaceRestorerUDF(gfpgan_weights, **options)({"image": images, "path": np.array(names)})
    assert calls == [3, 3]  # 3 faces, then 1 filled up to 3
    assert list(rows["path"]) == names and [len(json.loads(f)) for f in rows["faces"]] == [1, 1, 2, 0]
    fr = FaceRestorer(gfpgan_weights, **options)
    fr.fixed_batch = True
    for name, image, restored in zip(names, images, rows["image"]):
        assert np.array_equal(restored, fr.restore(image).image), name


def test_segmenter_udf_gives_the_api_s_masks(cluster, tmp_path):
    # one dtype per batch: Ray cannot stack an 8-bit and a 16-bit image (give read_images a mode)
    for name in ("cells3d_z34_heldout.png", "neuron_dapi_unseen.png", "scratch_assay_unseen.png"):
        shutil.copy(ROOT / "examples" / "nuclei" / name, tmp_path / name)
    from restore.ray import SegmenterUDF

    ds = ray.data.read_images(str(tmp_path), include_paths=True)
    rows = ds.map_batches(SegmenterUDF, fn_constructor_kwargs={"instances": True, "overlay": True}, batch_size=2,
                          compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1).take_all()
    seg = Segmenter()
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for row in rows:
            labels = seg(read_image(row["path"]), instances=True)
            assert row["mask"].dtype == np.uint16 and np.array_equal(row["mask"], labels)
            assert row["overlay"].shape == row["image"].shape[:2] + (3,)
        assert len(rows) == 3 and max(int(r["mask"].max()) for r in rows) > 5  # nuclei found
    finally:
        torch.set_num_threads(old)


def test_ray_local_starts_a_cluster_of_its_own(tmp_path):
    """From a process with no cluster: `--ray local` starts one, runs, and stops it."""
    img = ROOT / "examples" / "nuclei" / "dsb2018_heldout.png"
    run = subprocess.run([sys.executable, "-m", "restore", "segment", str(img), "-o", str(tmp_path / "o"), "--ray",
                          "local"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "on Ray (local), 1 worker(s)" in run.stderr and "segment: done 1, skipped 0, failed 0" in run.stderr
    assert (tmp_path / "o" / "dsb2018_heldout_mask.png").is_file()
