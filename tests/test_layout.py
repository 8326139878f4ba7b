"""The layout's rules (README, "Layout"): the arrows go one way (apps -> restore -> gan), no two
modules import each other (directly or round a longer circle, lazy imports included), no file
passes 400 lines, every subcommand is registered by its task package, not dispatched, no task
code lives outside its task's package (the shared rooms import no task), and no network is
registered outside its own file (tests/gan/nets/test_registry.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import ROOT

PACKAGES = ("gan", "restore", "apps")
INSTALLED_AS = {"apps": "restore.apps"}  # the folder apps/ is the package restore.apps (pyproject.toml)
APP = "restore.apps"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT / pkg).with_suffix("").parts)
            found[f"{INSTALLED_AS.get(pkg, pkg)}.{name}".removesuffix(".__init__")] = path
    return found


def in_app(name: str) -> bool:
    return name == APP or name.startswith(APP + ".")


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file (lazy imports included)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is no edge
                out.add(t)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def test_arrows_go_one_way(graph):
    for name, deps in graph.items():
        if name.startswith("gan"):
            assert not {d for d in deps if d.startswith("restore")}, name
        if name.startswith("restore") and not in_app(name) and name != "restore.serve":  # `restore app` starts it
            assert not {d for d in deps if in_app(d)}, name


TASKS = ("faces", "segment", "sketch", "translate", "upscale")  # gan/tasks.py: one package each under restore/
# Rooms that use the tasks by design: the command line assembles them, the trainers train their
# networks, the app serves them; restore.ray re-exports the tasks' Ray UDFs (its documented API).
USES_TASKS = ("restore.cli", "restore.train", "restore.ray", APP)


def test_no_task_code_outside_its_task(graph):
    """The shared rooms (runners, export, models, video, imageio, tiling, ...) import no task: a
    task's Ray UDF, film code or identity score lives in its own package and plugs into them."""
    tasks = tuple(f"restore.{t}" for t in TASKS)
    for name, deps in graph.items():
        if not name.startswith("restore.") or name.startswith(tasks + USES_TASKS):
            continue
        used = sorted(d for d in deps if d.startswith(tasks))
        assert not used, f"{name} imports task code {used}: move it into the task's package"


def test_no_import_circles(graph):
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                circle = stack[stack.index(dep):] + [dep]
                pytest.fail("import circle: " + " -> ".join(circle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_file_past_400_lines():
    long = {str(p.relative_to(ROOT)): n for folder in (*PACKAGES, "tests", "scripts", "benchmarks")
            for p in (ROOT / folder).rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_cli_only_assembles():
    """restore/cli.py registers each subcommand's ``run``; no chain of ``args.command ==``."""
    text = (ROOT / "restore" / "cli.py").read_text()
    assert "args.command ==" not in text and "args.what ==" not in text
    from restore.cli import build_parser

    parser = build_parser()
    for argv in (["segment", "x", "-o", "o"], ["faces", "x", "-o", "o"], ["translate", "x", "-o", "o", "--weights", "w"],
                 ["sketch", "x", "-o", "o"], ["eval", "segment", "--pred", "p", "--gt", "g"], ["weights", "list"],
                 ["app"], ["train", "pix2pix", "--data", "d", "--out", "o"], ["train", "segmenter", "--data", "d",
                 "--out", "o"], ["train", "colorizer", "--data", "d", "--out", "o"],
                 ["train", "gfpgan", "--data", "d", "--out", "o"]):
        run = parser.parse_args(argv).run
        package = run.__module__
        assert package.split(".")[1] in ("segment", "faces", "translate", "sketch", "models", "serve", "train"), argv
