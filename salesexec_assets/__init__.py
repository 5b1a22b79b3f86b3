"""ClickPoint SalesExec reports as daily-partitioned Dagster assets.

``SalesExecComponent`` is the integration as a Dagster component (one ``defs.yaml`` per
account); ``salesexec_assets.definitions`` is the standalone code location built from it.
It is imported on first use, so that the sandbox and the ``salesexec`` command, which
need no Dagster, start without importing it (about 2 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salesexec_assets.component import SalesExecComponent

__all__ = ["SalesExecComponent"]


def __getattr__(name: str) -> Any:
    if name == "SalesExecComponent":
        from salesexec_assets.component import SalesExecComponent

        return SalesExecComponent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:  # `dg list components` finds the component through dir()
    return sorted({*globals(), *__all__})
