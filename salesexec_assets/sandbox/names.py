"""Record field names the sandbox must fill in but ``api/contract.py`` has no constant for.

The contract spells these only as keys of its record descriptions. Each name is looked
up in those descriptions when this module is imported, so a correction of the contract
that renames or drops a field fails loudly here instead of letting the sandbox serve a
field the contract no longer has.
"""

from __future__ import annotations

from collections.abc import Mapping

from salesexec_assets.api.contract import (
    ACTION_RECORD,
    AWAITING_IMPORT_COUNT_RECORD,
    BRANCH_LEAD_COUNT_RECORD,
    LEAD_RECORD,
    FieldType,
)


def _in(record: Mapping[str, FieldType], name: str) -> str:
    """``name``, after checking that the contract's ``record`` still has it."""
    if name not in record:
        raise ImportError(
            f"the API contract has no field {name!r} any more: update salesexec_assets.sandbox"
        )
    return name


# lead records
LEAD_GUID = _in(LEAD_RECORD, "LeadGuid")
LEAD_TYPE_NAME = _in(LEAD_RECORD, "LeadTypeName")
DATE_ADDED = _in(LEAD_RECORD, "DateAddedUtc")
LAST_UPDATED = _in(LEAD_RECORD, "LastUpdatedUtc")
CLOSED = _in(LEAD_RECORD, "ClosedUtc")
LEAD_SOURCE_UID = _in(LEAD_RECORD, "LeadSourceUID")
LEAD_SOURCE_NAME = _in(LEAD_RECORD, "LeadSourceName")
CAMPAIGN_UID = _in(LEAD_RECORD, "CampaignUID")
CAMPAIGN_NAME = _in(LEAD_RECORD, "CampaignName")
LIFE_CYCLE_STAGE = _in(LEAD_RECORD, "LifeCycleStageName")
LEAD_STATUS = _in(LEAD_RECORD, "LeadStatusName")
ASSIGNED_USER_UID = _in(LEAD_RECORD, "AssignedUserUID")
ASSIGNED_USER_NAME = _in(LEAD_RECORD, "AssignedUserName")
BRANCH_UID = _in(LEAD_RECORD, "BranchUID")
BRANCH_NAME = _in(LEAD_RECORD, "BranchName")

# action records
ACTION_UID = _in(ACTION_RECORD, "ActionUID")
ACTION_NAME = _in(ACTION_RECORD, "ActionName")
ACTION_TYPE = _in(ACTION_RECORD, "ActionTypeName")
ACTION_USER_UID = _in(ACTION_RECORD, "UserUID")
ACTION_USER_NAME = _in(ACTION_RECORD, "UserName")
ACTION_DATE = _in(ACTION_RECORD, "ActionDateUtc")
ACTION_NOTES = _in(ACTION_RECORD, "Notes")
_in(ACTION_RECORD, LEAD_GUID)

# branch lead counts (BranchUID and BranchName as in lead records)
LEAD_COUNT = _in(BRANCH_LEAD_COUNT_RECORD, "LeadCount")
_in(BRANCH_LEAD_COUNT_RECORD, BRANCH_UID)
_in(BRANCH_LEAD_COUNT_RECORD, BRANCH_NAME)

# the awaiting-import count
AWAITING_COUNT = _in(AWAITING_IMPORT_COUNT_RECORD, "Count")
AWAITING_AS_OF = _in(AWAITING_IMPORT_COUNT_RECORD, "AsOfUtc")
