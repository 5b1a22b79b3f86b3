"""What a SalesExec webhook delivery may hold, and how each event in it is classified.

A delivery is a JSON object or an array of objects, at most :data:`MAX_BODY_BYTES`. Each
object is one event. A known type (100 to 103, see ``contract.WEBHOOK_TYPES``) is checked:
its ``LeadGuid`` must be a GUID and its ``*Utc`` field a timestamp the contract allows. An
event that fails the checks, or whose type is unknown, is still kept, as kind ``unknown``
with the reason: SalesExec does not resend what we refused, so refusing would lose it.

Pure functions: no I/O, so the receiver's rules can be tested on their own.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import TimestampError, parse_api_timestamp

MAX_BODY_BYTES = 256 * 1024
UNKNOWN = "unknown"
_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$")


class BadDelivery(ValueError):
    """A delivery refused whole: ``status`` is 400 (not a JSON object/array) or 413."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookEvent:
    """One event of a delivery, as the inbox stores it."""

    kind: str  # "100" .. "103", or "unknown"
    body: str  # canonical JSON (sorted keys, compact): the same event always reads the same
    body_sha256: str
    lead_guid: str | None = None
    instant: datetime | None = None  # the type's *Utc field, naive UTC
    stage: str | None = None  # 103: NewLifeCycleStageName
    reason: str | None = None  # why the event is "unknown"

    @property
    def known(self) -> bool:
        return self.kind != UNKNOWN


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _type_of(event: dict[str, Any]) -> tuple[contract.WebhookType | None, str | None]:
    """The event's webhook type, or None and why not."""
    for name in contract.WEBHOOK_TYPE_FIELDS:
        if name in event:
            raw = event[name]
            number = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
            if isinstance(raw, str) and raw.strip().isdigit():
                number = int(raw.strip())
            known = contract.WEBHOOK_TYPES_BY_NUMBER.get(number) if number is not None else None
            return known, None if known else f"unknown webhook type {raw!r}"
    # No type field: each type has its own *Utc field, so that field names it.
    matches = [t for f, t in contract.WEBHOOK_TYPES_BY_INSTANT_FIELD.items() if f in event]
    if len(matches) == 1:
        return matches[0], None
    return None, "no webhook type field and no single *Utc field that names one"


def classify(event: Any) -> WebhookEvent:
    """One event object as the inbox stores it (a known type, or ``unknown`` with why)."""
    body = canonical_json(event)
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if not isinstance(event, dict):
        return WebhookEvent(UNKNOWN, body, digest, reason="not a JSON object")
    webhook_type, reason = _type_of(event)
    if webhook_type is None:
        return WebhookEvent(UNKNOWN, body, digest, reason=reason)
    guid = event.get(contract.WEBHOOK_LEAD_GUID)
    if not isinstance(guid, str) or not _GUID.match(guid):
        return WebhookEvent(
            UNKNOWN, body, digest, reason=f"{contract.WEBHOOK_LEAD_GUID} is not a GUID"
        )
    try:
        instant = parse_api_timestamp(event.get(webhook_type.instant_field))  # type: ignore[arg-type]
    except TimestampError:
        return WebhookEvent(
            UNKNOWN,
            body,
            digest,
            reason=f"{webhook_type.instant_field} is not a timestamp the contract allows",
        )
    stage = event.get(contract.WEBHOOK_NEW_STAGE_NAME)
    return WebhookEvent(
        str(webhook_type.number),
        body,
        digest,
        lead_guid=guid.strip("{}").lower(),
        instant=instant,
        stage=stage if isinstance(stage, str) else None,
    )


def parse_delivery(body: bytes) -> list[WebhookEvent]:
    """The events of one delivery, or :class:`BadDelivery` (nothing of it is stored)."""
    if len(body) > MAX_BODY_BYTES:
        raise BadDelivery(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        value = json.loads(body)
        events = [value] if isinstance(value, dict) else value
        if isinstance(events, list) and events and all(isinstance(e, dict) for e in events):
            return [classify(event) for event in events]
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise BadDelivery(400, "the body is not JSON, or nested too deeply") from None
    raise BadDelivery(400, "the body must be a JSON object or a non-empty array of objects")
