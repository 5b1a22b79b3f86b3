"""The sandbox account's reference data: lead types and their own fields, branches,
users, campaigns, lead sources and the words that fill in a lead.

Everything here is fixed or derived from the seed alone, so that every process that
builds the same config agrees on it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

FieldValue = str | int | float | bool | None

# The LifeCycleStageName values of the contract, and each stage's LeadStatusName values.
STAGE_NEW = "New"
STAGE_WORKING = "Working"
STAGE_WON = "Closed Won"
STAGE_LOST = "Closed Lost"
STATUSES: dict[str, tuple[str, ...]] = {
    STAGE_NEW: ("New", "Unassigned"),
    STAGE_WORKING: ("Attempted Contact", "Contacted", "Appointment Set", "Application Sent"),
    STAGE_WON: ("Sold", "Funded"),
    STAGE_LOST: ("Not Interested", "Bad Number", "Duplicate", "Went With Competitor"),
}

# The status of a lead being worked that is not closed (yet, or any more).
WORKING_STATUS = "Contacted"

# (UID, name): one branch has no name, as the contract allows (BranchName is nullable).
BRANCHES: tuple[tuple[int, str | None], ...] = (
    (10, "Austin"),
    (11, "Denver"),
    (12, "Phoenix"),
    (13, "Tampa"),
    (14, "Columbus"),
    (15, None),
)
BRANCH_NAMES: dict[int, str | None] = dict(BRANCHES)
USERS: tuple[tuple[int, str], ...] = (
    (1001, "Dana Whitfield"),
    (1002, "Marcus Lee"),
    (1003, "Priya Raman"),
    (1004, "Tom Okafor"),
    (1005, "Elena Varga"),
    (1006, "Sam Castillo"),
    (1007, "Grace Kim"),
    (1008, "Victor Hale"),
)
SANDBOX_USER_ACCOUNT_UID = 1000  # the account the sandbox login belongs to
CAMPAIGNS: tuple[tuple[int, str], ...] = (
    (501, "Spring Refinance Push"),
    (502, "Summer Home Buyers"),
    (503, "Retargeting Q4"),
    (504, "Partner Referral Program"),
)
CAMPAIGN_SHARE = 0.75  # the other leads have no campaign (both campaign fields null)
# Every NO_SOURCE_EVERY-th lead UID (remainder NO_SOURCE_REMAINDER) has no lead source,
# as the contract allows (LeadSourceUID and LeadSourceName are nullable): a lead keyed in
# by hand. Decided by the UID, so every other draw of the data stays as it was.
NO_SOURCE_EVERY = 7
NO_SOURCE_REMAINDER = 3
LEAD_SOURCES: tuple[tuple[int, str], ...] = (
    (301, "Website Form"),
    (302, "Zillow"),
    (303, "Facebook Ads"),
    (304, "Referral"),
    (305, "LendingTree"),
    (306, "Inbound Call"),
)
# (ActionTypeName, ActionName choices, Notes choices; None in Notes means no note)
ACTION_KINDS: tuple[tuple[str, tuple[str, ...], tuple[str | None, ...]], ...] = (
    ("Call", ("Outbound Call", "Inbound Call"), ("Left voicemail", "Spoke with lead", None)),
    ("Email", ("Sent Email", "Email Opened"), (None,)),
    ("SMS", ("Sent SMS", "SMS Reply"), (None, "Replied STOP")),
    ("Note", ("Added Note",), ("Prefers evenings", "Asked for a callback", "Spouse decides")),
    ("Status Change", ("Status Changed",), (None,)),
)

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
    "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Carlos", "Karen", "Daniel", "Lisa", "Aisha", "Nancy",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Nguyen", "Patel", "Clark",
)  # fmt: skip
STATES = (
    "TX", "CA", "FL", "NY", "CO", "AZ", "OH", "GA", "NC", "WA",
    "IL", "PA", "MI", "NJ", "VA", "TN", "OR", "NV", "MN", "MO",
)  # fmt: skip

# Schema drift: the field an account adds, and the text a drifted number becomes.
DRIFT_NEW_FIELD = "PreferredContactTime"
DRIFT_NEW_FIELD_VALUES = ("Morning", "Afternoon", "Evening", "Anytime")
DRIFT_NOT_AVAILABLE = "n/a"
DRIFT_NOT_AVAILABLE_SHARE = 0.1


def _mortgage_fields(rng: random.Random) -> dict[str, FieldValue]:
    return {
        "LoanAmount": rng.randrange(80_000, 1_200_000, 1_000),
        "CreditScore": rng.randint(520, 840),
    }


def _insurance_fields(rng: random.Random) -> dict[str, FieldValue]:
    return {
        "PolicyType": rng.choice(("Auto", "Home", "Life", "Health", "Renters")),
        "Premium": round(rng.uniform(300.0, 4_500.0), 2),
    }


def _solar_fields(rng: random.Random) -> dict[str, FieldValue]:
    return {"RoofSqFt": rng.randint(800, 4_500), "OwnsHome": rng.random() < 0.8}


@dataclass(frozen=True)
class LeadTypeSpec:
    """One lead type: its identity, its own fields, and how schema drift changes them."""

    uid: int
    name: str
    own_fields: Callable[[random.Random], dict[str, FieldValue]]
    drift_field: str  # a numeric field that turns into text after the schema drift
    drift_unit: str  # the drifted text: "<number> <unit>"

    def guid(self, seed: int) -> str:
        """The lead type's GUID: stable per seed."""
        rng = random.Random(f"salesexec-sandbox:{seed}:lead-type:{self.uid}")
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))


LEAD_TYPES: tuple[LeadTypeSpec, ...] = (
    LeadTypeSpec(1, "Mortgage", _mortgage_fields, "LoanAmount", "USD"),
    LeadTypeSpec(2, "Insurance", _insurance_fields, "Premium", "USD"),
    LeadTypeSpec(3, "Solar", _solar_fields, "RoofSqFt", "sq ft"),
)
LEAD_TYPES_BY_UID: dict[int, LeadTypeSpec] = {spec.uid: spec for spec in LEAD_TYPES}
