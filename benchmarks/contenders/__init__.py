"""The contenders, by name; each module is imported only in its own child process.

A contender is a module with ``prepare(workload) -> load``: ``prepare`` does what a
deployment does once (imports, definitions), untimed; ``load()`` does the timed work and
returns a :class:`~benchmarks.workload.LoadOutput`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from benchmarks.workload import LoadOutput, Workload

Load = Callable[[], LoadOutput]


class Contender(Protocol):
    def prepare(self, workload: Workload) -> Load: ...


# name -> module; a module serving several names gets the name in ``prepare``
CONTENDERS: dict[str, str] = {
    "sandbox": "benchmarks.contenders.sandbox_probe",  # the do-nothing reader
    "ours": "benchmarks.contenders.ours",
    "dlt": "benchmarks.contenders.dlt_rest",
    "dlt-parquet": "benchmarks.contenders.dlt_rest",
    "floor": "benchmarks.contenders.floor",
}
LOADERS: tuple[str, ...] = ("ours", "dlt", "dlt-parquet", "floor")


class _Named:
    """A contender module bound to the name it was asked for (dlt has two variants)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = importlib.import_module(CONTENDERS.get(name, name))

    def prepare(self, workload: Workload) -> Load:
        prepare: Callable[[Workload, str], Load] = self.module.prepare
        return prepare(workload, self.name)


def load_contender(name: str) -> Contender:
    """The contender called ``name``; its heavy imports happen here, in the child.

    A dotted module path that is not a known name is imported as a contender too: that is
    how a what-if experiment (say, ours with one function patched) runs in the harness.
    """
    if name not in CONTENDERS and "." not in name:
        raise KeyError(f"unknown contender {name!r}; known: {', '.join(CONTENDERS)}")
    return _Named(name)
