"""Contract overrides: the names the real API uses where they differ from the contract.

A user who installed the package cannot edit :mod:`salesexec_assets.api.contract`; the
file named by ``SALESEXEC_CONTRACT_OVERRIDES`` renames, without code changes::

    paths:        # report name, or `authenticate` / `lead_types` -> the path the API uses
      closed_leads: /api/ClosedLeads
    parameters:   # contract parameter name -> the name the API uses
      StartDate: FromUtc
    fields:       # contract field name (record, envelope or login) -> the name the API sends
      TotalCount: Total

Everything past the HTTP boundary keeps the contract's names: the client renames what it
sends to the API's names and what it reads back to the contract's, and the sandbox does
the reverse to speak a dialect. Table and column names therefore never change when the
API's names do. A field rename applies wherever the contract uses that field name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import yaml

from salesexec_assets.api import contract
from salesexec_assets.api.endpoints import (
    ENDPOINTS,
    ENDPOINTS_BY_NAME,
    FIELD_NAMES,
    PARAMETER_NAMES,
    SCHEMAS,
)

CONTRACT_OVERRIDES_VAR = "SALESEXEC_CONTRACT_OVERRIDES"
SECTIONS = ("paths", "parameters", "fields")


class OverridesError(ValueError):
    """The overrides file cannot be used; the message names the file and the key."""


def _inverse(mapping: Mapping[str, str]) -> dict[str, str]:
    return {api: name for name, api in mapping.items()}


@dataclass(frozen=True)
class ContractOverrides:
    """The API's names for the contract's, where they differ; empty: the contract as is."""

    paths: Mapping[str, str] = field(default_factory=dict)  # endpoint name -> API path
    parameters: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None  # the file they came from

    @cached_property
    def _api_paths(self) -> dict[str, str]:
        return {ENDPOINTS_BY_NAME[name].path: api for name, api in self.paths.items()}

    @cached_property
    def _contract_paths(self) -> dict[str, str]:
        return {api.rstrip("/").lower(): path for path, api in self._api_paths.items()}

    @cached_property
    def _contract_parameters(self) -> dict[str, str]:
        return _inverse(self.parameters)

    @cached_property
    def _contract_fields(self) -> dict[str, str]:
        return _inverse(self.fields)

    @property
    def empty(self) -> bool:
        return not (self.paths or self.parameters or self.fields)

    # --- contract name -> the API's name ---------------------------------------------
    def path(self, endpoint: str) -> str:
        """The API's path of an endpoint (``authenticate``, ``lead_types``, a report)."""
        return self.paths.get(endpoint, ENDPOINTS_BY_NAME[endpoint].path)

    def api_path(self, contract_path: str) -> str:
        """The API's path for a contract path (the client's calls go by path)."""
        return self._api_paths.get(contract_path, contract_path)

    def api_parameter(self, name: str) -> str:
        return self.parameters.get(name, name)

    def api_field(self, name: str) -> str:
        return self.fields.get(name, name)

    def api_params(self, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """Query parameters under the API's names."""
        if params is None or not self.parameters:
            return None if params is None else dict(params)
        return {self.api_parameter(name): value for name, value in params.items()}

    def api_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON object (a record, the login body or answer) under the API's names."""
        return {self.api_field(name): value for name, value in record.items()}

    def api_payload(self, payload: Any) -> Any:
        """A parsed answer renamed IN PLACE as the API spells it: the envelope and its
        records, or one object."""
        return _rename_payload(payload, self.fields, self.api_field(contract.ENVELOPE_RESULTS))

    # --- the API's name -> contract name -----------------------------------------------
    def contract_path(self, api_path: str) -> str | None:
        """The contract path a renamed API path stands for (ASP.NET routes ignore case and
        a trailing slash), or None."""
        return self._contract_paths.get(api_path.rstrip("/").lower())

    def contract_parameter(self, api_name: str) -> str | None:
        """The contract parameter a renamed API parameter stands for, or None."""
        return self._contract_parameters.get(api_name)

    def contract_payload(self, payload: Any) -> Any:
        """A parsed answer of the API renamed IN PLACE to the contract's names (it was just
        parsed: nobody else holds it, and a page is not copied record by record)."""
        if not self.fields:
            return payload
        return _rename_payload(payload, self._contract_fields, contract.ENVELOPE_RESULTS)

    # --- for people --------------------------------------------------------------------
    def as_dict(self) -> dict[str, dict[str, str]]:
        """The overrides as the file spells them (empty sections left out)."""
        sections = {"paths": self.paths, "parameters": self.parameters, "fields": self.fields}
        return {name: dict(section) for name, section in sections.items() if section}

    def describe(self) -> str:
        """One line: which overrides are in effect, and from which file."""
        if self.empty:
            return "none (the contract as shipped)"
        renames = [
            f"{section}.{name}={api}"
            for section, mapping in self.as_dict().items()
            for name, api in mapping.items()
        ]
        return f"{len(renames)} from {self.source}: {', '.join(renames)}"


NO_OVERRIDES = ContractOverrides()


def _rename_keys(obj: dict[str, Any], renames: Mapping[str, str]) -> None:
    """Rename ``obj``'s keys in place; all are taken out before any is put back, so a
    swap of two names (``A: B`` and ``B: A``) loses nothing."""
    moved = [(new, obj.pop(old)) for old, new in renames.items() if old in obj]
    obj.update(moved)


def _rename_payload(payload: Any, renames: Mapping[str, str], results: str) -> Any:
    """``payload`` with its keys renamed in place; in an envelope (``results`` names the
    list), each record's too. A lead's ``Fields`` object keeps its keys: they are the
    account's own."""
    if not isinstance(payload, dict):
        return payload
    _rename_keys(payload, renames)
    records = payload.get(results)
    if isinstance(records, list):
        for record in records:
            if isinstance(record, dict):
                _rename_keys(record, renames)
    return payload


def _rename_in_text(text: str, renames: Mapping[str, str]) -> str:
    """``text`` with each whole-word contract name replaced by the API's."""
    if not renames:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, renames)) + r")\b")
    return pattern.sub(lambda match: renames[match.group(1)], text)


def api_message(overrides: ContractOverrides, message: str) -> str:
    """An error message as a dialect-speaking API would word it (its parameter names)."""
    return _rename_in_text(message, dict(overrides.parameters))


def parse_overrides(data: Any, source: str) -> ContractOverrides:
    """Validate the file's content: every key must be a contract name, every value a name."""
    if data is None:
        return ContractOverrides(source=source)
    if not isinstance(data, dict):
        raise OverridesError(f"{source}: must be a mapping with {', '.join(SECTIONS)}")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise OverridesError(
            f"{source}: unknown section {unknown[0]!r}; the sections are {', '.join(SECTIONS)}"
        )
    known = {
        "paths": (frozenset(ENDPOINTS_BY_NAME), "endpoint (authenticate, lead_types or a report)"),
        "parameters": (PARAMETER_NAMES, "contract parameter"),
        "fields": (FIELD_NAMES, "contract field"),
    }
    sections: dict[str, dict[str, str]] = {}
    for section in SECTIONS:
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise OverridesError(f"{source}: {section} must be a mapping of names to names")
        names, what = known[section]
        for key, value in entries.items():
            if key not in names:
                raise OverridesError(
                    f"{source}: {section}.{key}: no {what} is called {key!r}; "
                    f"known: {', '.join(sorted(names))}"
                )
            if not isinstance(value, str) or not value.strip():
                raise OverridesError(f"{source}: {section}.{key}: the API's name must be text")
            if section == "paths" and not value.startswith("/"):
                raise OverridesError(f"{source}: paths.{key}: {value!r} must start with '/'")
        sections[section] = {str(key): str(value).strip() for key, value in entries.items()}
    overrides = ContractOverrides(**sections, source=source)
    _refuse_collisions(overrides)
    return overrides


def _refuse_collisions(overrides: ContractOverrides) -> None:
    """Two contract names may not end up as one API name where both are used."""
    source = overrides.source
    paths: dict[str, str] = {}
    for endpoint in ENDPOINTS:
        api = overrides.path(endpoint.name).rstrip("/").lower()
        if api in paths:
            raise OverridesError(
                f"{source}: paths.{endpoint.name}: {overrides.path(endpoint.name)} is also "
                f"the path of {paths[api]}"
            )
        paths[api] = endpoint.name
    scopes = {
        **{name: {n: n for n in schema} for name, schema in SCHEMAS.items()},
        **{
            f"{endpoint.name} parameters": {p.name: p.name for p in endpoint.parameters}
            for endpoint in ENDPOINTS
        },
    }
    for scope, names in scopes.items():
        rename = overrides.api_parameter if scope.endswith("parameters") else overrides.api_field
        section = "parameters" if scope.endswith("parameters") else "fields"
        renamed = overrides.parameters if section == "parameters" else overrides.fields
        seen: dict[str, str] = {}
        for name in names:
            api = rename(name)
            if api in seen:
                key, other = (name, seen[api]) if name in renamed else (seen[api], name)
                raise OverridesError(
                    f"{source}: {section}.{key}: {api!r} is also the API's name of "
                    f"{other} ({scope})"
                )
            seen[api] = name


def load_overrides(path: str | Path) -> ContractOverrides:
    """Read and validate an overrides file (YAML or JSON)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise OverridesError(f"{CONTRACT_OVERRIDES_VAR}: cannot read {file}: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise OverridesError(f"{file}: is not valid YAML: {error}") from None
    return parse_overrides(data, str(file))


@lru_cache(maxsize=8)
def _load_cached(path: str, modified_ns: int, size: int) -> ContractOverrides:
    return load_overrides(path)


def overrides_from_environment(environ: Mapping[str, str] | None = None) -> ContractOverrides:
    """The overrides named by ``SALESEXEC_CONTRACT_OVERRIDES``, or none."""
    env = os.environ if environ is None else environ
    path = env.get(CONTRACT_OVERRIDES_VAR, "").strip()
    if not path:
        return NO_OVERRIDES
    try:
        stat = os.stat(path)
    except OSError:
        return load_overrides(path)  # raises, naming the variable and the file
    return _load_cached(path, stat.st_mtime_ns, stat.st_size)


def dump_overrides(overrides: Mapping[str, Mapping[str, str]], comments: list[str]) -> str:
    """An overrides file's text: the sections, then ``comments`` as YAML comments."""
    lines: list[str] = []
    for section in SECTIONS:  # every section, even empty: a person may add to it
        lines.append(f"{section}:")
        lines.extend(f"  {key}: {value}" for key, value in (overrides.get(section) or {}).items())
    if comments:
        lines.append("")
        lines.extend(f"# {comment}" for comment in comments)
    return "\n".join(lines) + "\n"
