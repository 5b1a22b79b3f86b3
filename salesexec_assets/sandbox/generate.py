"""Leads and actions, generated as a pure function of (seed, lead type, UTC day).

Each (lead type, day) has its own random stream, so generating one day never depends on
another and every process agrees on every day. A record is produced twice at once: as
canonical Python values (the ground truth) and as its JSON text on the wire.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, NamedTuple

from salesexec_assets.api import contract
from salesexec_assets.api.contract import (
    ACTION_RECORD,
    LEAD_FIELDS_OBJECT,
    LEAD_RECORD,
    LEAD_TYPE_UID,
    LEAD_UID,
    FieldType,
)
from salesexec_assets.sandbox import catalog
from salesexec_assets.sandbox.catalog import FieldValue, LeadTypeSpec
from salesexec_assets.sandbox.timeforms import Form, Stamp, stamp

DAY = timedelta(days=1)
LEAD_MAX_AGE = timedelta(days=14)  # LastUpdatedUtc - DateAddedUtc is always below this
LAST_MICROSECOND = DAY - timedelta(microseconds=1)
CLOSED_SHARE = 0.3
WON_SHARE = 0.4
MAX_ACTIONS_PER_LEAD = 5
_ACTION_UID_FACTOR = 10  # ActionUID = LeadUID * 10 + the action's index (0..5)
_LEAD_INDEX_FACTOR = 1_000_000  # LeadUID = (day ordinal * 10 + lead type) * 10**6 + index
_DAY_US = DAY // timedelta(microseconds=1)
_MAX_AGE_US = LEAD_MAX_AGE // timedelta(microseconds=1)


class Row(NamedTuple):
    """One record: canonical values (the truth) and its JSON text as served."""

    truth: dict[str, Any]
    json: str


def to_json(record: dict[str, Any]) -> str:
    """A record's compact JSON text, as the sandbox serves it."""
    return json.dumps(record, separators=(",", ":"))


def lead_uid(spec: LeadTypeSpec, day: date, index: int) -> int:
    """A lead's UID: unique across lead types, days and indexes (an int64)."""
    return (day.toordinal() * 10 + spec.uid) * _LEAD_INDEX_FACTOR + index


def lead_uid_origin(uid: int) -> tuple[int, date]:
    """The lead type UID and the UTC day a lead was added on, read back from its UID."""
    prefix = uid // _LEAD_INDEX_FACTOR
    return prefix % 10, date.fromordinal(prefix // 10)


def lead_day(uid: int) -> date:
    """The UTC day a lead was added, read back from its UID (see :func:`lead_uid`)."""
    return lead_uid_origin(uid)[1]


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _fields(rng: random.Random, spec: LeadTypeSpec, drifted: bool) -> dict[str, FieldValue]:
    """A lead's ``Fields``: the common contact fields, then the lead type's own.

    After the schema drift a new text field appears and one number becomes text, as when
    an account adds a field and retypes another.
    """
    first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
    fields: dict[str, FieldValue] = {
        "FirstName": first,
        "LastName": last,
        "Email": f"{first}.{last}{rng.randint(1, 999)}@example.com".lower(),
        "Phone": f"({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}"
        if rng.random() < 0.95
        else None,
        "State": rng.choice(catalog.STATES),
    }
    fields.update(spec.own_fields(rng))
    # Drawn whether or not drift is on, so that drift changes nothing but the Fields.
    contact_time = rng.choice(catalog.DRIFT_NEW_FIELD_VALUES)
    not_available = rng.random() < catalog.DRIFT_NOT_AVAILABLE_SHARE
    if drifted:
        fields[catalog.DRIFT_NEW_FIELD] = contact_time
        number = fields[spec.drift_field]
        fields[spec.drift_field] = (
            catalog.DRIFT_NOT_AVAILABLE if not_available else f"{number} {spec.drift_unit}"
        )
    return fields


def in_contract_order(
    contract_record: Mapping[str, FieldType], values: dict[str, Any]
) -> dict[str, Any]:
    """``values`` in the contract's field order; a field the sandbox lacks fails here."""
    return {name: values[name] for name in contract_record}


def _row(
    contract_record: Mapping[str, FieldType], values: dict[str, Any], stamps: dict[str, Stamp]
) -> Row:
    """A Row whose timestamps are canonical in the truth and texts on the wire."""
    truth = in_contract_order(
        contract_record, {**values, **{k: s.value for k, s in stamps.items()}}
    )
    wire = {**truth, **{k: s.text for k, s in stamps.items()}}
    return Row(truth, to_json(wire))


def make_lead(
    rng: random.Random,
    spec: LeadTypeSpec,
    uid: int,
    drifted: bool,
    added: Stamp,
    updated: Stamp,
    closed: Stamp | None,
) -> Row:
    """One lead with the given timestamps; the rest is drawn from ``rng``."""
    if closed is None:
        stage = catalog.STAGE_NEW if rng.random() < 0.4 else catalog.STAGE_WORKING
    else:
        stage = catalog.STAGE_WON if rng.random() < WON_SHARE else catalog.STAGE_LOST
    source_uid, source_name = rng.choice(catalog.LEAD_SOURCES)
    if uid % catalog.NO_SOURCE_EVERY == catalog.NO_SOURCE_REMAINDER:
        source_uid, source_name = None, None
    campaign_uid, campaign_name = (
        rng.choice(catalog.CAMPAIGNS) if rng.random() < catalog.CAMPAIGN_SHARE else (None, None)
    )
    user_uid, user_name = rng.choice(catalog.USERS)
    branch_uid, branch_name = rng.choice(catalog.BRANCHES)
    values = {
        LEAD_UID: uid,
        contract.LEAD_GUID: _guid(rng),
        LEAD_TYPE_UID: spec.uid,
        contract.LEAD_RECORD_TYPE_NAME: spec.name,
        contract.LEAD_SOURCE_UID: source_uid,
        contract.LEAD_SOURCE_NAME: source_name,
        contract.CAMPAIGN_UID: campaign_uid,
        contract.CAMPAIGN_NAME: campaign_name,
        contract.LIFE_CYCLE_STAGE: stage,
        contract.LEAD_STATUS: rng.choice(catalog.STATUSES[stage]),
        contract.ASSIGNED_USER_UID: user_uid,
        contract.ASSIGNED_USER_NAME: user_name,
        contract.BRANCH_UID: branch_uid,
        contract.BRANCH_NAME: branch_name,
        LEAD_FIELDS_OBJECT: _fields(rng, spec, drifted),
        contract.CLOSED: None,
    }
    stamps = {contract.DATE_ADDED: added, contract.LAST_UPDATED: updated}
    if closed is not None:
        stamps[contract.CLOSED] = closed
    return _row(LEAD_RECORD, values, stamps)


def _between(rng: random.Random, low: datetime, high: datetime) -> Stamp:
    """A timestamp drawn in [low, high], in a drawn form that never floors below ``low``."""
    return stamp(rng, low + (high - low) * rng.random(), not_before=low)


def _added_at(rng: random.Random, midnight: datetime, index: int) -> Stamp:
    """Lead 0 of a day is added at 00:00:00.000000, lead 1 at 23:59:59.999999.

    Those two keep full precision (the 7-digit form), so that the boundary of a day
    is exercised exactly; the others are added at random instants of the day.
    """
    if index == 0:
        return stamp(rng, midnight, form=Form.Z7)
    if index == 1:
        return stamp(rng, midnight + LAST_MICROSECOND, form=Form.Z7)
    return stamp(rng, midnight + timedelta(microseconds=rng.randrange(_DAY_US)))


def generate_leads(
    seed: int, spec: LeadTypeSpec, day: date, count: int, drift_from: date | None
) -> tuple[Row, ...]:
    """The ``count`` leads of ``spec`` added on UTC ``day``."""
    rng = random.Random(f"salesexec-sandbox:{seed}:leads:{spec.uid}:{day.isoformat()}")
    midnight = datetime.combine(day, time())
    drifted = drift_from is not None and day >= drift_from
    leads = []
    for index in range(count):
        added = _added_at(rng, midnight, index)
        age = timedelta(microseconds=rng.randrange(_MAX_AGE_US))
        updated = stamp(rng, added.value + age, not_before=added.value)
        closed = _between(rng, added.value, updated.value) if rng.random() < CLOSED_SHARE else None
        uid = lead_uid(spec, day, index)
        leads.append(make_lead(rng, spec, uid, drifted, added, updated, closed))
    return tuple(leads)


def inserted_lead(
    seed: int, spec: LeadTypeSpec, at: datetime, index: int, drift_from: date | None
) -> Row:
    """A lead added (and last updated) exactly at ``at``: the offset-drift fault's lead.

    ``index`` continues the day's numbering past the generated leads, so its UID is new.
    """
    day = at.date()
    rng = random.Random(f"salesexec-sandbox:{seed}:inserted:{spec.uid}:{day}:{index}")
    added = stamp(rng, at, form=Form.Z7)
    drifted = drift_from is not None and day >= drift_from
    return make_lead(rng, spec, lead_uid(spec, day, index), drifted, added, added, None)


def edited(row: Row, values: Mapping[str, Any], stamps: Mapping[str, Stamp | None]) -> Row:
    """``row`` with some fields changed: ``values`` as they are, ``stamps`` as timestamps
    (None: null). The other fields keep their truth and their text on the wire."""
    truth = {**row.truth, **values}
    wire = {**json.loads(row.json), **values}
    for name, value in stamps.items():
        truth[name] = None if value is None else value.value
        wire[name] = None if value is None else value.text
    return Row(truth, to_json(wire))


def lead_as_of(lead: Row, action_dates: Iterable[datetime], at: datetime) -> Row | None:
    """A lead as it stood at ``at``: None before it was added; not closed yet if it closes
    later; last updated by its latest event up to then (added, an action, closing)."""
    truth = lead.truth
    if truth[contract.DATE_ADDED] > at:
        return None
    if truth[contract.LAST_UPDATED] <= at:
        return lead
    closed = truth[contract.CLOSED]
    events = [truth[contract.DATE_ADDED], *(when for when in action_dates if when <= at)]
    if closed is not None and closed <= at:
        events.append(closed)
    updated = max(events)
    rng = random.Random(f"salesexec-sandbox:as-of:{truth[LEAD_UID]}:{updated.isoformat()}")
    stamps: dict[str, Stamp | None] = {contract.LAST_UPDATED: stamp(rng, updated, form=Form.Z7)}
    values: dict[str, Any] = {}
    if closed is not None and closed > at:
        stamps[contract.CLOSED] = None
        values = {
            contract.LIFE_CYCLE_STAGE: catalog.STAGE_WORKING,
            contract.LEAD_STATUS: catalog.WORKING_STATUS,
        }
    return edited(lead, values, stamps)


def generate_actions(
    seed: int, spec: LeadTypeSpec, day: date, leads: Sequence[Row]
) -> tuple[Row, ...]:
    """The actions on ``leads`` (added on ``day``): 0 to 5 per lead, each one between
    the lead's DateAddedUtc and LastUpdatedUtc."""
    rng = random.Random(f"salesexec-sandbox:{seed}:actions:{spec.uid}:{day.isoformat()}")
    actions = []
    for lead in leads:
        truth = lead.truth
        added, updated = truth[contract.DATE_ADDED], truth[contract.LAST_UPDATED]
        for index in range(rng.randint(0, MAX_ACTIONS_PER_LEAD)):
            action_type, action_names, notes = rng.choice(catalog.ACTION_KINDS)
            user_uid, user_name = (
                (truth[contract.ASSIGNED_USER_UID], truth[contract.ASSIGNED_USER_NAME])
                if rng.random() < 0.8
                else rng.choice(catalog.USERS)
            )
            values = {
                contract.ACTION_UID: truth[LEAD_UID] * _ACTION_UID_FACTOR + index,
                LEAD_UID: truth[LEAD_UID],
                contract.LEAD_GUID: truth[contract.LEAD_GUID],
                LEAD_TYPE_UID: spec.uid,
                contract.ACTION_NAME: rng.choice(action_names),
                contract.ACTION_TYPE: action_type,
                contract.ACTION_USER_UID: user_uid,
                contract.ACTION_USER_NAME: user_name,
                contract.ACTION_NOTES: rng.choice(notes),
            }
            when = _between(rng, added, updated)
            actions.append(_row(ACTION_RECORD, values, {contract.ACTION_DATE: when}))
    return tuple(actions)
