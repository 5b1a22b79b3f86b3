"""The contract's calls as data: login, lead types and the six reports, each with its
method, path, query parameters, JSON body and answer.

Composed from :mod:`salesexec_assets.api.contract`'s names only (it spells none of its
own), so that the Swagger document the sandbox serves, ``salesexec contract diff`` and
``salesexec probe`` all describe the same contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from salesexec_assets.api import contract
from salesexec_assets.api.contract import FieldType

AUTHENTICATE = "authenticate"  # the overrides file's key for the login call
LEAD_TYPES = "lead_types"  # ... and for the lead type list; reports go by their name

LOGIN_REQUEST: dict[str, FieldType] = {
    contract.LOGIN_USERNAME: FieldType.TEXT,
    contract.LOGIN_PASSWORD: FieldType.TEXT,
}
LOGIN_RESPONSE: dict[str, FieldType] = {
    contract.LOGIN_TOKEN: FieldType.TEXT,
    contract.LOGIN_USER_ACCOUNT_UID: FieldType.INTEGER,
    contract.LOGIN_EXPIRES: FieldType.TIMESTAMP,
}
# The list envelope's scalar fields; ``Results`` (the records) comes with them.
ENVELOPE: dict[str, FieldType] = {
    contract.ENVELOPE_TOTAL: FieldType.INTEGER,
    contract.ENVELOPE_SKIP: FieldType.INTEGER,
    contract.ENVELOPE_TAKE: FieldType.INTEGER,
}


@dataclass(frozen=True)
class Parameter:
    """One query parameter of a call."""

    name: str
    type: FieldType
    required: bool
    place: str = "query"


@dataclass(frozen=True)
class Endpoint:
    """One call of the contract."""

    name: str  # AUTHENTICATE, LEAD_TYPES or a report's name
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body: Mapping[str, FieldType] | None  # the JSON body's fields (the login's)
    record: Mapping[str, FieldType]  # one record of the answer (or the answer itself)
    paged: bool  # records come in the list envelope


LEAD_TYPE_PARAMETER = Parameter(contract.PARAM_LEAD_TYPE, FieldType.INTEGER, required=True)
WINDOW_PARAMETERS = (
    Parameter(contract.PARAM_START, FieldType.TIMESTAMP, required=True),
    Parameter(contract.PARAM_END, FieldType.TIMESTAMP, required=True),
)
PAGING_PARAMETERS = (
    Parameter(contract.PARAM_SKIP, FieldType.INTEGER, required=False),
    Parameter(contract.PARAM_TAKE, FieldType.INTEGER, required=False),
)


def report_endpoint(report: contract.Report) -> Endpoint:
    """A report's call: a lead type, then (when paged) the window and the paging."""
    parameters = (LEAD_TYPE_PARAMETER,)
    if report.paged:
        parameters += WINDOW_PARAMETERS + PAGING_PARAMETERS
    return Endpoint(report.name, "GET", report.path, parameters, None, report.record, report.paged)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        AUTHENTICATE, "POST", contract.AUTHENTICATE_PATH, (), LOGIN_REQUEST, LOGIN_RESPONSE, False
    ),
    Endpoint(
        LEAD_TYPES,
        "GET",
        contract.LEAD_TYPES_PATH,
        PAGING_PARAMETERS,
        None,
        contract.LEAD_TYPE_RECORD,
        True,
    ),
    *(report_endpoint(report) for report in contract.REPORTS),
)
ENDPOINTS_BY_NAME: dict[str, Endpoint] = {endpoint.name: endpoint for endpoint in ENDPOINTS}

PARAMETER_NAMES: frozenset[str] = frozenset(
    parameter.name for endpoint in ENDPOINTS for parameter in endpoint.parameters
)
# Every field name the API sends or receives, by the schema it belongs to.
SCHEMAS: dict[str, Mapping[str, FieldType]] = {
    "envelope": {**ENVELOPE, contract.ENVELOPE_RESULTS: FieldType.OBJECT},
    "login request": LOGIN_REQUEST,
    **{f"{endpoint.name} record": endpoint.record for endpoint in ENDPOINTS},
}
FIELD_NAMES: frozenset[str] = frozenset(name for schema in SCHEMAS.values() for name in schema)
