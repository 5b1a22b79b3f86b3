"""What-if: ours with column names computed once per field name, not once per value.

The profile puts about half of ours' run in ``naming.snake_case``, called for every field
of every record (557,512 calls for 36k rows). This patches, in the child process only,
the names ``records.py`` uses with memoized versions, then runs ours unchanged. Use it as
a contender to measure the gain before changing the package:

    python benchmarks/ingest.py --contenders ours,benchmarks.experiments.ours_memoized_names \\
        --leads-per-day 5000 --runs 1 --latency-ms 0 --range-days 0

Once the package memoizes the names itself, this measures nothing new: delete it.
"""

from __future__ import annotations

from functools import lru_cache

import salesexec_assets.records as records
from benchmarks.contenders import Load
from benchmarks.contenders.ours import prepare as prepare_ours
from benchmarks.workload import Workload

records.snake_case = lru_cache(maxsize=4096)(records.snake_case)  # type: ignore[attr-defined]
records.field_column = lru_cache(maxsize=4096)(records.field_column)  # type: ignore[attr-defined]


def prepare(workload: Workload, name: str) -> Load:
    """Ours, with the patch above in force."""
    return prepare_ours(workload, name)
