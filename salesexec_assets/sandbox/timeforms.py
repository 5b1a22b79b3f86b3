"""The timestamp forms the contract allows, written the way the sandbox serves them.

A served timestamp is a canonical instant (a naive UTC datetime at microsecond
precision, the ground truth) plus the text on the wire. The text represents the
canonical value EXACTLY once truncated to microseconds, so a client that parses it
correctly gets the truth back: an instant is first floored to its form's precision, and
the 7-digit form adds a 100 ns tick that truncation must drop.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


class Form(Enum):
    """How one timestamp is written."""

    Z7 = "7 fractional digits + Z"  # .NET round-trip UTC: the most common form
    Z3 = "3 fractional digits + Z"
    Z0 = "whole seconds + Z"
    OFFSET = "7 fractional digits + UTC offset, local time"
    NAIVE = "6 fractional digits, no zone (means UTC)"


# (form, cumulative share): drawn once per timestamp
_FORM_SHARES: tuple[tuple[Form, float], ...] = (
    (Form.Z7, 0.60),
    (Form.Z3, 0.70),
    (Form.Z0, 0.80),
    (Form.OFFSET, 0.90),
    (Form.NAIVE, 1.00),
)
_OFFSETS: tuple[tuple[timedelta, str], ...] = (
    (timedelta(hours=-5), "-05:00"),
    (timedelta(hours=-8), "-08:00"),
    (timedelta(hours=1), "+01:00"),
    (timedelta(hours=5, minutes=30), "+05:30"),
)


@dataclass(frozen=True, slots=True)
class Stamp:
    """A timestamp as truth (``value``) and as served (``text``)."""

    value: datetime
    text: str


def pick_form(rng: random.Random) -> Form:
    """A form drawn at the shares above."""
    draw = rng.random()
    for form, cumulative in _FORM_SHARES:
        if draw < cumulative:
            return form
    return Form.Z7


def floor_to_form(value: datetime, form: Form) -> datetime:
    """``value`` floored to the precision ``form`` can write."""
    if form is Form.Z3:
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if form is Form.Z0:
        return value.replace(microsecond=0)
    return value


def render(value: datetime, form: Form, rng: random.Random) -> str:
    """The text of ``value`` (already at the form's precision) in ``form``."""
    if form is Form.Z7:
        return f"{value.isoformat(timespec='microseconds')}{rng.randrange(10)}Z"
    if form is Form.Z3:
        return value.isoformat(timespec="milliseconds") + "Z"
    if form is Form.Z0:
        return value.isoformat(timespec="seconds") + "Z"
    if form is Form.OFFSET:
        offset, label = rng.choice(_OFFSETS)
        local = (value + offset).isoformat(timespec="microseconds")
        return f"{local}{rng.randrange(10)}{label}"
    return value.isoformat(timespec="microseconds")


def stamp(
    rng: random.Random,
    raw: datetime,
    not_before: datetime | None = None,
    form: Form | None = None,
) -> Stamp:
    """``raw`` in a drawn (or the given) form, never floored to before ``not_before``.

    Flooring to whole seconds could move an instant before the one it must follow (an
    action before its lead was added); such a value keeps full precision instead.
    """
    if form is None:
        form = pick_form(rng)
    value = floor_to_form(raw, form)
    if not_before is not None and value < not_before:
        form, value = Form.Z7, raw
    return Stamp(value, render(value, form, rng))
