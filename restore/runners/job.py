"""A command's work as steps every runner shares: one input after another (``run_batch``), the
pipeline on one machine (``run_pipeline``) and a Ray cluster (``run_on_ray``).

    class SegmentJob(Job):
        def outputs(self, file, rel): ...          # the files one input makes (resume, clean-up)
        def read(self, file, rel): ...             # decode; no model (on Ray: in a task)
        def prepare(self, value): ...              # per input, may use the model (faces: detection)
        def compute(self, values): ...             # the network, on several inputs at once
        def save(self, file, rel, result): ...     # write atomically; the return value is reported

    report = run_job(SegmentJob(partial(Segmenter, ...), out=out), found.items, ignored=found.ignored)

The model is built on first use from ``make_model`` (a picklable callable, e.g. a
``functools.partial`` of the model's class), so a job crosses to a Ray worker as its settings
and each worker builds its own model once; ``model=`` gives a ready one (local runs only).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Job"]


class Job:
    """Base of the commands' jobs; see the module's docstring."""
    desc = "job"  # the progress bar's and summary line's name
    out: Path  # the output folder: every output is under it (and the runners sweep it)
    batch = 1  # ``size`` units (inputs; faces for ``restore faces``) per ``compute`` call

    def __init__(self, make_model: Callable[..., Any] | None = None, *, model: Any = None) -> None:
        self._make_model = make_model
        self._model = None if model is None else self.setup(model)
        self._device: str | None = None

    @property
    def model(self) -> Any:
        if self._model is None and self._make_model is not None:  # neither: a job without one (sketch --extract)
            made = self._make_model(device=self._device) if self._device else self._make_model()
            self._model = self.setup(made)
        return self._model

    def use_device(self, device: str) -> None:
        """Make the model on ``device`` instead (a Ray actor given a GPU); before first use."""
        self._device = device

    def setup(self, model: Any) -> Any:
        """What a model (made here or given) needs before use (subclasses); returns the model."""
        return model

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if state.get("_make_model") is not None:  # each Ray worker makes its own
            state["_model"] = None
        return state

    def outputs(self, file: Path, rel: Path) -> list[Path]:
        raise NotImplementedError

    def read(self, file: Path, rel: Path) -> Any:
        raise NotImplementedError

    def prepare(self, value: Any) -> Any:
        return value

    def size(self, value: Any) -> int:
        return 1

    def compute(self, values: list[Any]) -> list[Any]:
        """One result per value, or an exception instance for a value that failed alone."""
        results: list[Any] = []
        for value in values:
            try:
                results.append(self.compute_one(value))
            except Exception as e:  # noqa: BLE001 - one input's failure
                results.append(e)
        return results

    def compute_one(self, value: Any) -> Any:
        raise NotImplementedError

    def save(self, file: Path, rel: Path, result: Any) -> Any:
        raise NotImplementedError

    def load(self, file: Path, rel: Path) -> Any:
        """``read`` then ``prepare``: the reader thread's step on one machine."""
        return self.prepare(self.read(file, rel))
