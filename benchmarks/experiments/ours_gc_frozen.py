"""What-if: ours with the objects alive when a load starts left out of garbage collection.

A Dagster process holds about a million objects after its imports. Every full (oldest
generation) collection walks all of them, and decoding pages allocates enough to start
one every few tens of thousands of records. This wraps ``load_report``, in the child
process only, in ``gc.freeze()`` ... ``gc.unfreeze()`` (nothing is leaked: what was
alive is handed back to the collector afterwards), then runs ours unchanged:

    python benchmarks/ingest.py --shapes busy-day --busy-day-leads 20000 --runs 3 \\
        --contenders ours,benchmarks.experiments.ours_gc_frozen --latency-ms 0 --range-days 0
"""

from __future__ import annotations

import gc
from functools import wraps
from typing import Any

import salesexec_assets.assets as assets_module
from benchmarks.contenders import Load
from benchmarks.contenders.ours import prepare as prepare_ours
from benchmarks.workload import Workload

_original = assets_module.load_report  # type: ignore[attr-defined]


@wraps(_original)
def _frozen_load_report(*args: Any, **kwargs: Any) -> Any:
    gc.freeze()
    try:
        return _original(*args, **kwargs)
    finally:
        gc.unfreeze()


assets_module.load_report = _frozen_load_report  # type: ignore[attr-defined]


def prepare(workload: Workload, name: str) -> Load:
    """Ours, with the patch above in force."""
    return prepare_ours(workload, name)
