"""Packaging (README, "Layout"): the wheel holds two top-level packages, ``restore`` and ``gan``; the
repository's apps/ and weights/ install inside restore's namespace as ``restore.apps`` and
``restore.weights``. The wheel, installed (not editable, no dependencies) into a fresh venv away
from the checkout, runs ``restore faces`` and ``restore segment`` on the examples with the bundled
weights of the installed copy."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

INSTALLED_AS = {"gan": "gan", "restore": "restore", "apps": "restore.apps", "weights": "restore.weights"}
WEIGHT_FILES = ("*.toml", "*.safetensors", "*.md")  # restore.weights' package data


def source_packages() -> set[str]:
    """Every package of the checkout (a folder with an __init__.py) under its installed name."""
    return {".".join((INSTALLED_AS[top], *init.parent.relative_to(ROOT / top).parts))
            for top in INSTALLED_AS for init in (ROOT / top).rglob("__init__.py")}


def installed_files() -> set[str]:
    """The wheel's paths of the checkout's modules and bundled weight files."""
    out = set()
    for top, name in INSTALLED_AS.items():
        files = [*(ROOT / top).rglob("*.py")] + ([f for g in WEIGHT_FILES for f in (ROOT / top).glob(g)]
                                                 if top == "weights" else [])
        out |= {"/".join((*name.split("."), *f.relative_to(ROOT / top).parts)) for f in files}
    return out


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_package_is_listed_in_pyproject():
    """pyproject.toml lists the packages (the mapped ones cannot be found on disk): a new folder
    with an __init__.py under gan/ or restore/ goes into [tool.setuptools] packages."""
    with (ROOT / "pyproject.toml").open("rb") as f:
        cfg = tomllib.load(f)["tool"]["setuptools"]
    listed, found = set(cfg["packages"]), source_packages()
    assert not found - listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(found - listed)}"
    assert not listed - found, f"no such package (listed in pyproject.toml): {sorted(listed - found)}"
    assert cfg["package-dir"] == {"restore.apps": "apps", "restore.weights": "weights"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (the checkout gets no build/ or egg-info)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for top in INSTALLED_AS:
        shutil.copytree(ROOT / top, src / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", tmp / "dist", src])
    (built,) = (tmp / "dist").glob("unet_restore-*.whl")
    return built


@pytest.mark.slow
def test_wheel_holds_restore_and_gan_only(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (dist_info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        top_level = z.read(f"{dist_info}/top_level.txt").decode().split()
    assert {n.split("/")[0] for n in names} - {dist_info} == {"gan", "restore"}
    assert sorted(top_level) == ["gan", "restore"]
    missing = installed_files() - names
    assert not missing, f"not in the wheel: {sorted(missing)[:10]}"
    assert {"restore/apps/app.py", "restore/weights/manifest.toml", "restore/weights/nuclei.safetensors",
            "restore/weights/restorer.safetensors", "restore/brisque_svm.npz", "restore/brisque_svm.LICENSE"} <= names


# Where the installed copy imports from (and finds its bundled weights).
WHERE = """import json, sys, gan, restore, restore.apps, restore.weights
from restore.models.manifest import WEIGHTS_DIR, manifest_path
editable = [f.__module__ for f in sys.meta_path if getattr(f, "__module__", "").startswith("__editable__")]
assert not editable, editable  # the checkout's editable finder would fill in what the wheel lacks
print(json.dumps({"gan": gan.__file__, "restore": restore.__file__, "restore.apps": restore.apps.__file__,
                  "restore.weights": restore.weights.__file__, "WEIGHTS_DIR": str(WEIGHTS_DIR),
                  "manifest": str(manifest_path())}))"""


@pytest.mark.slow
def test_installed_wheel_runs_faces_and_segment(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # The dependencies: this environment's site-packages as plain path lines, appended after the
    # venv's own; their .pth files do not run, so the checkout's editable finder stays out.
    deps = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (site / "_deps.pth").write_text("\n".join(deps) + "\n")

    work = tmp_path / "work"  # away from the checkout: only the pictures
    (work / "faces").mkdir(parents=True)
    (work / "cells").mkdir()  # not "nuclei": a folder of the model's name would be taken for a run folder
    shutil.copy2(ROOT / "examples" / "faces" / "two_faces_small.jpg", work / "faces")
    shutil.copy2(ROOT / "examples" / "nuclei" / "dsb2018_heldout.png", work / "cells")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESTORE_MANIFEST", "PYTHONHOME")}
    env.update(RESTORE_HOME=str(tmp_path / "home"), PYTHONNOUSERSITE="1")  # no weights cache: the bundled ones

    where = json.loads(run([python, "-c", WHERE], cwd=work, env=env).stdout)
    for name, path in where.items():
        assert Path(path).resolve().is_relative_to(site.resolve()), (name, path)
    assert Path(where["WEIGHTS_DIR"]) == Path(where["restore.weights"]).parent

    restore = venv / "bin" / "restore"
    run([restore, "faces", "faces", "-o", "out/faces"], cwd=work, env=env)
    assert (work / "out" / "faces" / "restored" / "two_faces_small.png").is_file()
    report = json.loads((work / "out" / "faces" / "report.json").read_text())
    assert len(report[0]["faces"]) == 2 and report[0]["error"] is None
    run([restore, "segment", "cells", "-o", "out/segment"], cwd=work, env=env)
    assert (work / "out" / "segment" / "dsb2018_heldout_mask.png").is_file()
    assert (work / "out" / "segment" / "dsb2018_heldout_overlay.png").is_file()
