"""The test suite, laid out like the code: tests/gan/..., tests/restore/..., tests/apps/."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: examples/, scripts/, weights/
DATA = Path(__file__).resolve().parent / "data"  # the committed test fixtures
