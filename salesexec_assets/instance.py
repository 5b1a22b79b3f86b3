"""The names one SalesExec instance gives its Dagster objects and warehouse tables.

Several accounts live in one code location as several instances; each owns its asset
keys, schema, jobs, schedules, sensors, resource keys and pools, so none clashes with
another's. The default instance keeps the names the standalone code location always had
(``salesexec/<report>``, schema ``salesexec``, resources ``salesexec`` and ``warehouse``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey

DEFAULT_PREFIX = "salesexec"


@dataclass(frozen=True)
class Instance:
    """One account's namespace: asset key prefix, warehouse schema and group."""

    key_prefix: str = DEFAULT_PREFIX
    schema: str = DEFAULT_PREFIX
    group_name: str = DEFAULT_PREFIX

    @property
    def is_default(self) -> bool:
        return self.key_prefix == DEFAULT_PREFIX

    def asset_key(self, name: str) -> AssetKey:
        return AssetKey([self.key_prefix, name])

    def scoped(self, name: str) -> str:
        """A job/schedule/sensor/resource/pool name: unchanged for the default instance,
        ``<prefix>__<name>`` for any other, so two instances never share one."""
        return name if self.is_default else f"{self.key_prefix}__{name}"

    @property
    def salesexec_resource_key(self) -> str:
        return self.scoped("salesexec")

    @property
    def warehouse_resource_key(self) -> str:
        return self.scoped("warehouse")


DEFAULT_INSTANCE = Instance()
