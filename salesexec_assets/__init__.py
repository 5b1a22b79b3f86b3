"""ClickPoint SalesExec reports as daily-partitioned Dagster assets.

``SalesExecComponent`` is the integration as a Dagster component (one ``defs.yaml`` per
account); ``salesexec_assets.definitions`` is the standalone code location built from it.
"""

from salesexec_assets.component import SalesExecComponent

__all__ = ["SalesExecComponent"]
