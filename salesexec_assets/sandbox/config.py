"""The sandbox's settings: which data it serves and which faults it injects.

Both are frozen dataclasses so that a configuration can be shared between threads and
processes and compared for equality: the same config always yields the same data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date

# A lead's UID packs its index within its (lead type, day): the index must stay below this.
MAX_LEADS_PER_DAY = 500_000


@dataclass(frozen=True)
class Faults:
    """Injected misbehaviour of the API, each off by default and freely combinable.

    ``seed`` drives every random draw, so one fault configuration replays the same way
    against a single-threaded client.
    """

    seed: int = 0
    p429: float = 0.0  # share of requests answered 429 with a Retry-After header
    retry_after_seconds: int = 1  # the Retry-After delay (seconds form; the date form too)
    p5xx: float = 0.0  # share of requests answered 500/502/503/504
    token_uses: int | None = None  # a token dies after this many uses (None: never)
    latency_ms: float = 0.0  # delay added to every request
    ptruncate: float = 0.0  # share of 200 answers whose body is cut short
    # share of 200 answers whose connection drops mid-body: the headers announce the whole
    # body (Content-Length), part of it is sent, then the connection is closed
    pdrop: float = 0.0
    pdrift: float = 0.0  # share of paged report reads with Skip > 0 that insert a lead first
    # share of paged report reads with Skip > 0 that first make a row the first page served
    # leave the window: a lead deleted, updated to now or reopened (see sandbox/state.py)
    premove: float = 0.0
    schema_drift_from: date | None = None  # leads added from this day on have drifted Fields

    def __post_init__(self) -> None:
        for name in ("p429", "p5xx", "ptruncate", "pdrop", "pdrift", "premove"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a share and must be within [0, 1], got {value}")
        if self.token_uses is not None and self.token_uses < 1:
            raise ValueError(f"token_uses must be 1 or more (or None), got {self.token_uses}")
        if self.latency_ms < 0:
            raise ValueError(f"latency_ms must not be negative, got {self.latency_ms}")
        if self.retry_after_seconds < 0:
            raise ValueError(
                f"retry_after_seconds must not be negative, got {self.retry_after_seconds}"
            )


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox serves: the data's seed and volume, the login, and the faults."""

    seed: int = 7
    leads_per_day: int = 50  # per lead type and UTC day
    username: str = "sandbox"
    password: str = field(default="sandbox", repr=False)  # never shown in logs or reprs
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        if not 0 <= self.leads_per_day <= MAX_LEADS_PER_DAY:
            raise ValueError(
                f"leads_per_day must be within [0, {MAX_LEADS_PER_DAY}], got {self.leads_per_day}"
            )


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(SandboxConfig))
_FAULT_FIELDS = frozenset(f.name for f in dataclasses.fields(Faults))


def configure(config: SandboxConfig | None = None, **overrides: object) -> SandboxConfig:
    """A config with overrides applied; a fault's name (``p429=0.1``) sets that fault.

    Lets tests write ``run_sandbox(leads_per_day=5, p5xx=0.2)`` instead of nesting
    dataclasses.
    """
    config = config or SandboxConfig()
    unknown = set(overrides) - _CONFIG_FIELDS - _FAULT_FIELDS
    if unknown:
        raise TypeError(f"unknown sandbox settings: {', '.join(sorted(unknown))}")
    fault_overrides = {k: v for k, v in overrides.items() if k in _FAULT_FIELDS}
    config_overrides = {k: v for k, v in overrides.items() if k in _CONFIG_FIELDS}
    if fault_overrides:
        faults = config_overrides.get("faults", config.faults)
        if not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults, got {type(faults).__name__}")
        config_overrides["faults"] = dataclasses.replace(faults, **fault_overrides)
    return dataclasses.replace(config, **config_overrides)
