"""The sandbox's webhooks: subscriptions, lead events, and deliveries with their faults.

SalesExec pushes a webhook to every subscriber when a lead is created, returned, changed
or changes status. The sandbox does the same: a change made through
:meth:`SandboxWebhooks.lead_event` (or its test endpoint ``POST /_sandbox/lead-events``)
changes the sandbox's data, hence its ground truth, and queues the public payload for each
subscription. A background thread delivers each payload as its own ``POST`` with a
timeout and a few retries, as ClickPoint documents for its sister product. Switchable
faults (:class:`WebhookFaults`) lose, duplicate and reorder deliveries, so the receiver,
its inbox and the sensor can be tested against what a real sender does.

The subscription endpoint (``contract.WEBHOOK_SUBSCRIPTIONS_PATH``) is an assumption, as
in the contract module.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from salesexec_assets.api import contract
from salesexec_assets.api.timestamps import TimestampError, parse_api_timestamp
from salesexec_assets.sandbox import catalog
from salesexec_assets.sandbox.generate import LEAD_MAX_AGE
from salesexec_assets.sandbox.messages import Request, Response, error_response, json_response
from salesexec_assets.sandbox.state import LiveData

# The sandbox's own test endpoints, not the API's.
LEAD_EVENTS_PATH = "/_sandbox/lead-events"
WEBHOOK_FAULTS_PATH = "/_sandbox/webhook-faults"
SANDBOX_ACCOUNT_GUID = "5a1d0c3e-7b2f-4e8a-9c6d-1f0e2d3c4b5a"
RETURNED_STATUS = "Returned"
DELIVERY_TIMEOUT_SECONDS = 30.0


def format_webhook_instant(instant: datetime) -> str:
    """A naive-UTC instant as .NET writes it in webhooks: 7 fractional digits and ``Z``."""
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{instant.microsecond:06d}0Z"


def webhook_payload(number: int, values: Mapping[str, Any]) -> dict[str, Any]:
    """The public payload of webhook type ``number``, its fields taken from ``values``
    (datetimes are written as the API writes them), and the type field."""
    webhook_type = contract.WEBHOOK_TYPES_BY_NUMBER[number]
    payload: dict[str, Any] = {contract.WEBHOOK_TYPE_FIELDS[0]: number}
    for name in webhook_type.fields:
        value = values.get(name)
        payload[name] = format_webhook_instant(value) if isinstance(value, datetime) else value
    return payload


def _guid_of(kind: str, name: str) -> str:
    """A stable GUID for a named thing of the sandbox (a field, a stage, a status)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"salesexec-sandbox:{kind}:{name}"))


@dataclass(frozen=True)
class WebhookFaults:
    """How the sandbox's deliveries misbehave; all off by default."""

    p_lost: float = 0.0  # share of deliveries never sent (as when the sender gives up)
    p_duplicate: float = 0.0  # share of deliveries sent twice
    reorder: bool = False  # deliveries queued together go out in shuffled order
    reorder_window_seconds: float = 0.3  # how long a delivery waits for others to shuffle with
    max_attempts: int = 4  # tries per delivery (a non-2xx answer or no answer is retried)
    retry_delay_seconds: float = 0.5  # before the 2nd try; doubles after each failure
    seed: int = 0


@dataclass(frozen=True)
class Subscription:
    """One webhook subscription of the sandbox account."""

    id: int
    url: str = field(repr=False)  # holds the receiver's secret
    types: tuple[int, ...]

    def as_record(self) -> dict[str, Any]:
        return {
            contract.SUBSCRIPTION_ID: self.id,
            contract.SUBSCRIPTION_URL: self.url,
            contract.SUBSCRIPTION_TYPES: list(self.types),
            contract.SUBSCRIPTION_DATA_TYPE: contract.SUBSCRIPTION_DATA_TYPE_JSON,
        }


@dataclass
class Delivery:
    """One payload for one subscription, and what became of it."""

    payload: dict[str, Any]
    subscription_id: int
    attempts: int = 0
    sent: int = 0  # 2 when the duplicate fault fired
    acknowledged: bool = False  # a 2xx answer was received
    lost: bool = False  # the lost fault fired, or every attempt failed


class SandboxWebhooks:
    """Subscriptions, lead events and deliveries of one sandbox server."""

    def __init__(self, data: LiveData, token_refusal: Callable[[Request], Response | None]) -> None:
        self._data = data
        self._token_refusal = token_refusal
        self._lock = threading.Condition()
        self._subscriptions: dict[int, Subscription] = {}
        self._next_id = 1
        self._queue: list[Delivery] = []
        self._in_flight = 0
        self._closed = False
        self.faults = WebhookFaults()
        self._rng = random.Random(0)
        self.deliveries: list[Delivery] = []  # the ledger, in the order events happened
        self._thread: threading.Thread | None = None

    # --- settings ------------------------------------------------------------------------
    def set_faults(self, faults: WebhookFaults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)

    def subscribe(self, url: str, types: tuple[int, ...] | None = None) -> Subscription:
        if not url.startswith(("http://", "https://")):
            raise ValueError("the webhook URL must be http(s)")
        chosen = tuple(types) if types else tuple(contract.WEBHOOK_TYPES_BY_NUMBER)
        unknown = [t for t in chosen if t not in contract.WEBHOOK_TYPES_BY_NUMBER]
        if unknown:
            raise ValueError(f"unknown webhook types: {unknown}")
        with self._lock:
            subscription = Subscription(self._next_id, url, chosen)
            self._subscriptions[subscription.id] = subscription
            self._next_id += 1
        return subscription

    def unsubscribe(self, subscription_id: int) -> Subscription | None:
        with self._lock:
            return self._subscriptions.pop(subscription_id, None)

    def subscriptions(self) -> list[Subscription]:
        with self._lock:
            return list(self._subscriptions.values())

    # --- lead events ---------------------------------------------------------------------
    def lead_event(
        self,
        action: str,
        *,
        lead_type_uid: int | None = None,
        lead_uid: int | None = None,
        field_name: str = "State",
        value: Any = "TX",
        won: bool = True,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Change the data as SalesExec would and send the webhook; returns the payload.

        ``action``: ``create`` (a new lead of ``lead_type_uid``), or for ``lead_uid``:
        ``return``, ``change`` (its ``Fields[field_name] = value``) or ``close`` (won or
        lost). ``at`` (naive UTC, default now) is when it happened.
        """
        at = at or self._data.visible_now()  # the sandbox's clock, as the data is served
        if action == "create":
            if lead_type_uid is None:
                raise ValueError("create needs lead_type_uid")
            lead = self._data.insert_lead(lead_type_uid, at, during="webhook")
            type_guid = self._data.spec(lead_type_uid).guid(self._data.config.seed)
            payload = self._payload(100, lead, {contract.WEBHOOK_LEAD_TYPE_GUID: type_guid})
            payload["LeadCreatedUtc"] = format_webhook_instant(lead[contract.DATE_ADDED])
        elif action in ("return", "change", "close"):
            if lead_uid is None:
                raise ValueError(f"{action} needs lead_uid")
            payload = self._change(action, lead_uid, field_name, value, won, at)
        else:
            raise ValueError(f"unknown lead event {action!r}: create, return, change or close")
        self._emit(payload)
        return payload

    def _change(
        self, action: str, lead_uid: int, field_name: str, value: Any, won: bool, at: datetime
    ) -> dict[str, Any]:
        before = self._data.lead(lead_uid)
        added = before[contract.DATE_ADDED]
        if not added <= at < added + LEAD_MAX_AGE:
            raise ValueError(
                f"lead {lead_uid} was added {added}: the sandbox changes a lead only in the "
                f"{LEAD_MAX_AGE.days} days after it was added"
            )
        if action == "return":
            lead = self._data.change_lead(
                lead_uid, {contract.LEAD_STATUS: RETURNED_STATUS, contract.LAST_UPDATED: at}
            )
            return self._payload(101, lead, {"LeadReturnedUtc": at})
        if action == "change":
            lead = self._data.change_lead(
                lead_uid,
                {contract.LEAD_FIELDS_OBJECT: {field_name: value}, contract.LAST_UPDATED: at},
            )
            extra = {
                contract.WEBHOOK_LEAD_FIELD_GUID: _guid_of("field", field_name),
                contract.WEBHOOK_VALUE: value,
                "ValueUpdatedUtc": at,
            }
            return self._payload(102, lead, extra)
        stage = catalog.STAGE_WON if won else catalog.STAGE_LOST
        status = catalog.STATUSES[stage][0]
        lead = self._data.change_lead(
            lead_uid,
            {
                contract.LIFE_CYCLE_STAGE: stage,
                contract.LEAD_STATUS: status,
                contract.CLOSED: at,
                contract.LAST_UPDATED: at,
            },
        )
        extra = {
            contract.WEBHOOK_NEW_STAGE_GUID: _guid_of("stage", stage),
            contract.WEBHOOK_NEW_STAGE_NAME: stage,
            contract.WEBHOOK_NEW_STATUS_GUID: _guid_of("status", status),
            contract.WEBHOOK_NEW_STATUS_NAME: status,
            "StatusUpdatedUtc": at,
        }
        return self._payload(103, lead, extra)

    @staticmethod
    def _payload(number: int, lead: Mapping[str, Any], extra: Mapping[str, Any]) -> dict:
        values = {
            contract.WEBHOOK_ACCOUNT_GUID: SANDBOX_ACCOUNT_GUID,
            contract.WEBHOOK_LEAD_GUID: lead[contract.LEAD_GUID],
            **extra,
        }
        return webhook_payload(number, values)

    # --- deliveries ----------------------------------------------------------------------
    def _emit(self, payload: dict[str, Any]) -> None:
        number = payload[contract.WEBHOOK_TYPE_FIELDS[0]]
        with self._lock:
            for subscription in self._subscriptions.values():
                if number in subscription.types:
                    delivery = Delivery(payload, subscription.id)
                    self.deliveries.append(delivery)
                    self._queue.append(delivery)
            if self._thread is None and self._queue:
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="sandbox-webhooks", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()

    def flush(self, timeout: float = 120.0) -> bool:
        """Wait until every queued delivery is done (acknowledged or lost)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _next_batch(self) -> list[Delivery] | None:
        with self._lock:
            while not self._queue and not self._closed:
                self._lock.wait()
            if self._closed:
                return None
            faults = self.faults
        if faults.reorder:  # let the deliveries of a burst gather, then shuffle them
            time.sleep(faults.reorder_window_seconds)
        with self._lock:
            batch, self._queue = self._queue, []
            self._in_flight = len(batch)
            if faults.reorder:
                self._rng.shuffle(batch)
        return batch

    def _deliver_forever(self) -> None:
        with requests.Session() as session:
            while (batch := self._next_batch()) is not None:
                for delivery in batch:
                    self._deliver(session, delivery)
                    with self._lock:
                        self._in_flight -= 1
                        self._lock.notify_all()

    def _deliver(self, session: requests.Session, delivery: Delivery) -> None:
        with self._lock:
            subscription = self._subscriptions.get(delivery.subscription_id)
            faults = self.faults
            lose = self._rng.random() < faults.p_lost
            copies = 2 if self._rng.random() < faults.p_duplicate else 1
        if subscription is None or lose:
            delivery.lost = True
            return
        body = json.dumps(delivery.payload).encode("utf-8")
        for _copy in range(copies):
            for attempt in range(1, faults.max_attempts + 1):
                delivery.attempts += 1
                try:
                    answer = session.post(
                        subscription.url,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=DELIVERY_TIMEOUT_SECONDS,
                    )
                    if 200 <= answer.status_code < 300:
                        delivery.acknowledged = True
                        delivery.sent += 1
                        break
                except requests.RequestException:
                    pass
                if attempt < faults.max_attempts:
                    time.sleep(faults.retry_delay_seconds * 2 ** (attempt - 1))
        delivery.lost = not delivery.acknowledged

    # --- HTTP ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response | None:
        """The subscription endpoint and the test endpoint; None for any other path."""
        path = request.path.rstrip("/").lower()
        base = contract.WEBHOOK_SUBSCRIPTIONS_PATH.lower()
        if path == LEAD_EVENTS_PATH.lower():
            return self._lead_event_endpoint(request)
        if path == WEBHOOK_FAULTS_PATH.lower():
            return self._faults_endpoint(request)
        if path != base and not path.startswith(base + "/"):
            return None
        refusal = self._token_refusal(request)
        if refusal is not None:
            return refusal
        if path == base and request.method == "GET":
            records = [s.as_record() for s in self.subscriptions()]
            return json_response(200, json.dumps(records))
        if path == base and request.method == "POST":
            return self._subscribe_endpoint(request)
        if path != base and request.method == "DELETE":
            ident = path[len(base) + 1 :]
            removed = self.unsubscribe(int(ident)) if ident.isdigit() else None
            if removed is None:
                return error_response(404, f"Webhook subscription {ident} was not found.")
            return json_response(200, json.dumps(removed.as_record()))
        return error_response(
            405, f"The requested resource does not support http method '{request.method}'."
        )

    def _subscribe_endpoint(self, request: Request) -> Response:
        try:
            body = json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get(contract.SUBSCRIPTION_URL), str):
            return error_response(
                400,
                f"The request is invalid: the body must be JSON with {contract.SUBSCRIPTION_URL}.",
            )
        data_type = body.get(contract.SUBSCRIPTION_DATA_TYPE, contract.SUBSCRIPTION_DATA_TYPE_JSON)
        if data_type != contract.SUBSCRIPTION_DATA_TYPE_JSON:
            return error_response(400, "The request is invalid: only JSON webhooks are supported.")
        types = body.get(contract.SUBSCRIPTION_TYPES)
        try:
            subscription = self.subscribe(
                body[contract.SUBSCRIPTION_URL], tuple(types) if isinstance(types, list) else None
            )
        except (ValueError, TypeError) as error:
            return error_response(400, f"The request is invalid: {error}")
        return json_response(200, json.dumps(subscription.as_record()))

    def _faults_endpoint(self, request: Request) -> Response:
        """``POST /_sandbox/webhook-faults`` {"p_lost": 0.1, "reorder": true, ...}."""
        if request.method != "POST":
            return error_response(405, "POST the webhook faults.", (("Allow", "POST"),))
        try:
            body = json.loads(request.body or b"null")
            faults = WebhookFaults(**body)
        except (ValueError, TypeError) as error:
            return error_response(400, f"The webhook faults are invalid: {error}")
        self.set_faults(faults)
        return json_response(200, json.dumps(dataclasses.asdict(faults)))

    def _lead_event_endpoint(self, request: Request) -> Response:
        """``POST /_sandbox/lead-events`` {"action": ..., "lead_type_uid" | "lead_uid", ...}."""
        if request.method != "POST":
            return error_response(405, "POST a lead event.", (("Allow", "POST"),))
        try:
            body = json.loads(request.body or b"null")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            at = parse_api_timestamp(body["at"]) if body.get("at") else None
            payload = self.lead_event(
                str(body.get("action")),
                lead_type_uid=body.get("lead_type_uid"),
                lead_uid=body.get("lead_uid"),
                field_name=body.get("field", "State"),
                value=body.get("value", "TX"),
                won=bool(body.get("won", True)),
                at=at,
            )
        except (ValueError, KeyError, TypeError, TimestampError) as error:
            return error_response(400, f"The lead event is invalid: {error}")
        return json_response(200, json.dumps(payload))
