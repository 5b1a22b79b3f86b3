"""The SalesExec REST API contract, in one place.

Every path, query parameter, header and field name the project relies on is spelled
here and nowhere else. The contract is an ASSUMPTION built from public material (see
docs/contract.md): when the real Swagger at https://restapi.sales-exec.net
says otherwise, correct this module and the rest of the code follows.

The six Domo reports are described as data (:data:`REPORTS`): endpoint, window field,
primary key, record kind and how a day is pulled. One code path serves them all.

A user who cannot edit this module corrects it with an overrides file instead
(``SALESEXEC_CONTRACT_OVERRIDES``): :func:`effective` is the contract in effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from salesexec_assets.api.overrides import ContractOverrides

DEFAULT_BASE_URL = "https://restapi.sales-exec.net"

# --- authentication ----------------------------------------------------------------
AUTHENTICATE_PATH = "/api/Authenticate"
LOGIN_USERNAME = "UserName"
LOGIN_PASSWORD = "Password"
LOGIN_TOKEN = "AuthToken"
LOGIN_USER_ACCOUNT_UID = "UserAccountUID"
LOGIN_EXPIRES = "ExpiresUtc"
AUTH_HEADER = "AuthToken"

# --- common query parameters, envelope and errors --------------------------------------
PARAM_LEAD_TYPE = "LeadTypeUID"
PARAM_START = "StartDate"
PARAM_END = "EndDate"
PARAM_SKIP = "Skip"
PARAM_TAKE = "Take"
TAKE_MAX = 500
TAKE_DEFAULT = 100
MAX_WINDOW = timedelta(days=31)

ENVELOPE_TOTAL = "TotalCount"
ENVELOPE_SKIP = "Skip"
ENVELOPE_TAKE = "Take"
ENVELOPE_RESULTS = "Results"
ERROR_MESSAGE = "Message"

RETRY_AFTER_HEADER = "Retry-After"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})

# --- lead types (the connector's "Lead Type UID" menu) -------------------------------
LEAD_TYPES_PATH = "/api/LeadTypes"
LEAD_TYPE_UID = "LeadTypeUID"
LEAD_TYPE_GUID = "LeadTypeGuid"
LEAD_TYPE_NAME = "Name"


class FieldType(str, Enum):
    """How a contract field is typed; the warehouse maps each to a column type."""

    INTEGER = "integer"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    OBJECT = "object"  # a lead's ``Fields``: kept whole as JSON and flattened


# --- records ----------------------------------------------------------------------------
LEAD_UID = "LeadUID"
LEAD_GUID = "LeadGuid"
LEAD_RECORD_TYPE_NAME = "LeadTypeName"
DATE_ADDED = "DateAddedUtc"
LAST_UPDATED = "LastUpdatedUtc"
CLOSED = "ClosedUtc"
LEAD_SOURCE_UID = "LeadSourceUID"
LEAD_SOURCE_NAME = "LeadSourceName"
CAMPAIGN_UID = "CampaignUID"
CAMPAIGN_NAME = "CampaignName"
LIFE_CYCLE_STAGE = "LifeCycleStageName"
LEAD_STATUS = "LeadStatusName"
ASSIGNED_USER_UID = "AssignedUserUID"
ASSIGNED_USER_NAME = "AssignedUserName"
BRANCH_UID = "BranchUID"
BRANCH_NAME = "BranchName"
LEAD_FIELDS_OBJECT = "Fields"

ACTION_UID = "ActionUID"
ACTION_NAME = "ActionName"
ACTION_TYPE = "ActionTypeName"
ACTION_USER_UID = "UserUID"
ACTION_USER_NAME = "UserName"
ACTION_DATE = "ActionDateUtc"
ACTION_NOTES = "Notes"

LEAD_COUNT = "LeadCount"
AWAITING_COUNT = "Count"
AWAITING_AS_OF = "AsOfUtc"

LEAD_RECORD: dict[str, FieldType] = {
    LEAD_UID: FieldType.INTEGER,
    LEAD_GUID: FieldType.TEXT,
    LEAD_TYPE_UID: FieldType.INTEGER,
    LEAD_RECORD_TYPE_NAME: FieldType.TEXT,
    DATE_ADDED: FieldType.TIMESTAMP,
    LAST_UPDATED: FieldType.TIMESTAMP,
    CLOSED: FieldType.TIMESTAMP,
    LEAD_SOURCE_UID: FieldType.INTEGER,
    LEAD_SOURCE_NAME: FieldType.TEXT,
    CAMPAIGN_UID: FieldType.INTEGER,
    CAMPAIGN_NAME: FieldType.TEXT,
    LIFE_CYCLE_STAGE: FieldType.TEXT,
    LEAD_STATUS: FieldType.TEXT,
    ASSIGNED_USER_UID: FieldType.INTEGER,
    ASSIGNED_USER_NAME: FieldType.TEXT,
    BRANCH_UID: FieldType.INTEGER,
    BRANCH_NAME: FieldType.TEXT,
    LEAD_FIELDS_OBJECT: FieldType.OBJECT,
}

ACTION_RECORD: dict[str, FieldType] = {
    ACTION_UID: FieldType.INTEGER,
    LEAD_UID: FieldType.INTEGER,
    LEAD_GUID: FieldType.TEXT,
    LEAD_TYPE_UID: FieldType.INTEGER,
    ACTION_NAME: FieldType.TEXT,
    ACTION_TYPE: FieldType.TEXT,
    ACTION_USER_UID: FieldType.INTEGER,
    ACTION_USER_NAME: FieldType.TEXT,
    ACTION_DATE: FieldType.TIMESTAMP,
    ACTION_NOTES: FieldType.TEXT,
}

BRANCH_LEAD_COUNT_RECORD: dict[str, FieldType] = {
    BRANCH_UID: FieldType.INTEGER,
    BRANCH_NAME: FieldType.TEXT,
    LEAD_TYPE_UID: FieldType.INTEGER,
    LEAD_COUNT: FieldType.INTEGER,
}

AWAITING_IMPORT_COUNT_RECORD: dict[str, FieldType] = {
    LEAD_TYPE_UID: FieldType.INTEGER,
    AWAITING_COUNT: FieldType.INTEGER,
    AWAITING_AS_OF: FieldType.TIMESTAMP,
}

LEAD_TYPE_RECORD: dict[str, FieldType] = {
    LEAD_TYPE_UID: FieldType.INTEGER,
    LEAD_TYPE_GUID: FieldType.TEXT,
    LEAD_TYPE_NAME: FieldType.TEXT,
}

# Fields that carry personal data: never shown in previews or logs.
PERSONAL_FIELDS = frozenset(
    {LEAD_FIELDS_OBJECT, ASSIGNED_USER_NAME, ACTION_USER_NAME, ACTION_NOTES}
)


class Pull(str, Enum):
    """How a report's rows for a set of days are obtained."""

    RECORDS = "records"  # paged records; each carries its window field, bucketed by day
    DAILY_AGGREGATE = "daily_aggregate"  # paged aggregate rows; one call series per day
    NOW = "now"  # a single current value; only today's partition can be pulled


@dataclass(frozen=True)
class Report:
    """One Domo report, described as data."""

    name: str  # asset and table name
    title: str  # the report's name in the Domo connector
    path: str
    record: dict[str, FieldType]
    key: tuple[str, ...]  # unique within a partition
    pull: Pull
    window_field: str | None  # the record field whose instant decides the day
    description: str

    @property
    def paged(self) -> bool:
        return self.pull is not Pull.NOW


REPORTS: tuple[Report, ...] = (
    Report(
        name="all_actions",
        title="All Actions",
        path="/api/Actions",
        record=ACTION_RECORD,
        key=(ACTION_UID,),
        pull=Pull.RECORDS,
        window_field=ACTION_DATE,
        description="Every action (call, email, SMS, note, status change) taken on a lead, "
        "by the day the action happened.",
    ),
    Report(
        name="all_leads",
        title="All Leads",
        path="/api/Leads",
        record=LEAD_RECORD,
        key=(LEAD_UID,),
        pull=Pull.RECORDS,
        window_field=DATE_ADDED,
        description="Every lead, by the day it was added, with its lead type's own fields.",
    ),
    Report(
        name="branch_lead_count",
        title="Branch Lead Count",
        path="/api/Branches/LeadCount",
        record=BRANCH_LEAD_COUNT_RECORD,
        key=(LEAD_TYPE_UID, BRANCH_UID),
        pull=Pull.DAILY_AGGREGATE,
        window_field=None,
        description="Per branch and lead type, the number of leads added on the day.",
    ),
    Report(
        name="closed_leads",
        title="Closed Leads",
        path="/api/Leads/Closed",
        record=LEAD_RECORD,
        key=(LEAD_UID,),
        pull=Pull.RECORDS,
        window_field=CLOSED,
        description="Leads closed (won or lost) on the day.",
    ),
    Report(
        name="leads_awaiting_import_count",
        title="Count for Leads Awaiting Import",
        path="/api/Leads/AwaitingImport/Count",
        record=AWAITING_IMPORT_COUNT_RECORD,
        key=(LEAD_TYPE_UID, AWAITING_AS_OF),
        pull=Pull.NOW,
        window_field=None,
        description="How many leads wait for import, per lead type, as of each pull. The API "
        "knows only 'now': only today's partition can be pulled; each pull adds a snapshot.",
    ),
    Report(
        name="last_updated_leads",
        title="Last Updated Leads",
        path="/api/Leads/LastUpdated",
        record=LEAD_RECORD,
        key=(LEAD_UID,),
        pull=Pull.RECORDS,
        window_field=LAST_UPDATED,
        description="Leads by the day they were last updated.",
    ),
)

REPORTS_BY_NAME: dict[str, Report] = {report.name: report for report in REPORTS}


def effective() -> ContractOverrides:
    """The contract in effect: these names, renamed by the file that
    ``SALESEXEC_CONTRACT_OVERRIDES`` names (see :mod:`salesexec_assets.api.overrides`).

    The client and the embedded sandbox both ask here, so they always agree; tables and
    columns keep the names above whatever the API calls them.
    """
    from salesexec_assets.api.overrides import overrides_from_environment

    return overrides_from_environment()


# --- webhooks -----------------------------------------------------------------------------
# The payload fields of the four lead webhooks are PUBLIC (ClickPoint help article "Configure
# Webhooks via API"); JSON is the only format (WebHookDataType=1). ASSUMED, because nothing
# public says: how a delivery names its type (a field, below; a delivery without it is
# recognised by its one ``*Utc`` field, which differs per type), the subscription endpoint
# and its field names. Correct them here.
WEBHOOK_TYPE_FIELDS: tuple[str, ...] = ("WebHookType", "Type")  # the first is what we send
WEBHOOK_ACCOUNT_GUID = "AccountGuid"
WEBHOOK_LEAD_GUID = LEAD_GUID
WEBHOOK_LEAD_TYPE_GUID = LEAD_TYPE_GUID
WEBHOOK_LEAD_FIELD_GUID = "LeadFieldGuid"
WEBHOOK_VALUE = "Value"
WEBHOOK_NEW_STAGE_GUID = "NewLifeCycleStageGuid"
WEBHOOK_NEW_STAGE_NAME = "NewLifeCycleStageName"
WEBHOOK_NEW_STATUS_GUID = "NewLeadStatusGuid"
WEBHOOK_NEW_STATUS_NAME = "NewLeadStatusName"
# The life-cycle stages of a closed lead (the lead record's LifeCycleStageName values).
CLOSED_LIFE_CYCLE_STAGES = frozenset({"Closed Won", "Closed Lost"})


@dataclass(frozen=True)
class WebhookType:
    """One webhook type: its number, name, fields, and the field holding its instant."""

    number: int
    name: str
    fields: tuple[str, ...]
    instant_field: str


WEBHOOK_TYPES: tuple[WebhookType, ...] = (
    WebhookType(
        100,
        "Lead Created",
        (WEBHOOK_ACCOUNT_GUID, WEBHOOK_LEAD_GUID, WEBHOOK_LEAD_TYPE_GUID, "LeadCreatedUtc"),
        "LeadCreatedUtc",
    ),
    WebhookType(
        101,
        "Lead Returned",
        (WEBHOOK_ACCOUNT_GUID, WEBHOOK_LEAD_GUID, "LeadReturnedUtc"),
        "LeadReturnedUtc",
    ),
    WebhookType(
        102,
        "Lead Data Changed",
        (
            WEBHOOK_ACCOUNT_GUID,
            WEBHOOK_LEAD_GUID,
            WEBHOOK_LEAD_FIELD_GUID,
            WEBHOOK_VALUE,
            "ValueUpdatedUtc",
        ),
        "ValueUpdatedUtc",
    ),
    WebhookType(
        103,
        "Lead Status Changed",
        (
            WEBHOOK_ACCOUNT_GUID,
            WEBHOOK_LEAD_GUID,
            WEBHOOK_NEW_STAGE_GUID,
            WEBHOOK_NEW_STAGE_NAME,
            WEBHOOK_NEW_STATUS_GUID,
            WEBHOOK_NEW_STATUS_NAME,
            "StatusUpdatedUtc",
        ),
        "StatusUpdatedUtc",
    ),
)
WEBHOOK_TYPES_BY_NUMBER: dict[int, WebhookType] = {t.number: t for t in WEBHOOK_TYPES}
WEBHOOK_TYPES_BY_INSTANT_FIELD: dict[str, WebhookType] = {
    t.instant_field: t for t in WEBHOOK_TYPES
}

# Subscriptions (ASSUMED endpoint and fields): GET lists, POST subscribes, DELETE /{id}.
WEBHOOK_SUBSCRIPTIONS_PATH = "/api/WebHooks"
SUBSCRIPTION_ID = "WebHookUID"
SUBSCRIPTION_URL = "Url"
SUBSCRIPTION_TYPES = "WebHookTypes"
SUBSCRIPTION_DATA_TYPE = "WebHookDataType"
SUBSCRIPTION_DATA_TYPE_JSON = 1
