"""The connector's scheduling presets, turned into cron expressions.

The connector offers "manually", "every N hours" from a start time, "daily", "weekdays",
"weekly" on chosen days, "monthly" on a day, each at a start time, plus an advanced mode
(nth weekday, set times). Here each preset is a short English phrase that maps to ONE cron
expression; anything else is taken as a cron expression (Dagster's dialect: ``0#2`` is
"2nd Sunday", so ``0 6 * * 0#2,0#4`` is "2nd and 4th Sunday at 06:00").

Every schedule also gets a slug, so schedules can be named after what they do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MANUAL = "manual"

_TIME = r"(?P<hour>\d{1,2}):(?P<minute>\d{2})"
_DAY_NUMBERS = {
    "sun": 0, "sunday": 0,
    "mon": 1, "monday": 1,
    "tue": 2, "tues": 2, "tuesday": 2,
    "wed": 3, "wednesday": 3,
    "thu": 4, "thur": 4, "thurs": 4, "thursday": 4,
    "fri": 5, "friday": 5,
    "sat": 6, "saturday": 6,
}  # fmt: skip
_DAY_SLUGS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

PRESET_FORMS = (
    "manual",
    "every N hours [from HH:MM]",
    "daily at HH:MM",
    "weekdays at HH:MM",
    "weekly on DAYS at HH:MM",
    "monthly on day D at HH:MM",
)


class ScheduleSyntaxError(ValueError):
    """The text is neither a preset nor a valid cron expression; the message says why."""


@dataclass(frozen=True)
class Cadence:
    """When a schedule ticks: the text as written, its cron expression and a name slug."""

    text: str
    cron: str
    slug: str

    @property
    def is_preset(self) -> bool:
        return not self.slug.startswith("cron_")


def _clock(hour_text: str, minute_text: str, text: str) -> tuple[int, int]:
    hour, minute = int(hour_text), int(minute_text)
    if hour > 23 or minute > 59:
        raise ScheduleSyntaxError(f"{text!r}: {hour_text}:{minute_text} is not a time of day")
    return hour, minute


def _every_hours(match: re.Match[str], text: str) -> Cadence:
    step = int(match["step"] or 1)
    hour, minute = _clock(match["hour"], match["minute"], text) if match["hour"] else (0, 0)
    if not 1 <= step <= 24 or 24 % step:
        raise ScheduleSyntaxError(
            f"{text!r}: every {step} hours does not repeat the same way each day; use 1, 2, "
            "3, 4, 6, 8, 12 or 24 hours, or a cron expression for irregular times"
        )
    first = hour % step
    hours = str(first) if step == 24 else f"{first}-23/{step}"
    return Cadence(text, f"{minute} {hours} * * *", f"every_{step}h_from_{hour:02d}{minute:02d}")


def _daily(match: re.Match[str], text: str) -> Cadence:
    hour, minute = _clock(match["hour"], match["minute"], text)
    return Cadence(text, f"{minute} {hour} * * *", f"daily_{hour:02d}{minute:02d}")


def _weekdays(match: re.Match[str], text: str) -> Cadence:
    hour, minute = _clock(match["hour"], match["minute"], text)
    return Cadence(text, f"{minute} {hour} * * 1-5", f"weekdays_{hour:02d}{minute:02d}")


def _weekly(match: re.Match[str], text: str) -> Cadence:
    hour, minute = _clock(match["hour"], match["minute"], text)
    names = [name for name in re.split(r"[\s,]+|\band\b", match["days"].lower()) if name]
    unknown = [name for name in names if name not in _DAY_NUMBERS]
    if unknown or not names:
        raise ScheduleSyntaxError(
            f"{text!r}: {', '.join(unknown) or 'no day'} is not a day of the week "
            "(mon, tue, wed, thu, fri, sat, sun)"
        )
    days = sorted({_DAY_NUMBERS[name] for name in names})
    slug_days = "_".join(_DAY_SLUGS[day] for day in days)
    return Cadence(
        text,
        f"{minute} {hour} * * {','.join(map(str, days))}",
        f"weekly_{slug_days}_{hour:02d}{minute:02d}",
    )


def _monthly(match: re.Match[str], text: str) -> Cadence:
    hour, minute = _clock(match["hour"], match["minute"], text)
    day = int(match["day"])
    if not 1 <= day <= 31:
        raise ScheduleSyntaxError(f"{text!r}: day {day} is not a day of the month (1 to 31)")
    return Cadence(text, f"{minute} {hour} {day} * *", f"monthly_day{day}_{hour:02d}{minute:02d}")


_PRESETS = (
    (re.compile(rf"every\s+(?:(?P<step>\d+)\s+)?hours?(?:\s+from\s+{_TIME})?"), _every_hours),
    (re.compile(rf"daily\s+at\s+{_TIME}"), _daily),
    (re.compile(rf"weekdays\s+at\s+{_TIME}"), _weekdays),
    (re.compile(rf"weekly\s+on\s+(?P<days>[a-z,\s]+?)\s+at\s+{_TIME}"), _weekly),
    (re.compile(rf"monthly\s+on\s+day\s+(?P<day>\d+)\s+at\s+{_TIME}"), _monthly),
)
_PRESET_WORDS = ("every", "daily", "weekdays", "weekly", "monthly")

_CRON_SLUG = str.maketrans({"*": "x", "/": "every", ",": "_", "#": "nth", "-": "to", "?": "x"})


def is_valid_cron(expression: str) -> bool:
    """Whether Dagster accepts ``expression`` as a five-field cron schedule.

    Dagster's own validator is used so that what passes here also loads as a schedule.
    """
    from dagster._utils.schedules import is_valid_cron_string

    return len(expression.split()) == 5 and is_valid_cron_string(expression)


def cron_slug(expression: str) -> str:
    """``0 6 * * 0#2,0#4`` -> ``cron_0_6_x_x_0nth2_0nth4`` (letters, digits, underscores)."""
    text = "_".join(expression.lower().translate(_CRON_SLUG).split())
    return "cron_" + re.sub(r"[^a-z0-9_]", "", text)


def parse_cadence(text: str) -> Cadence | None:
    """A preset or cron expression -> Cadence; ``manual`` -> None.

    Raises ScheduleSyntaxError naming what is wrong.
    """
    normalized = " ".join(text.strip().lower().split())
    if normalized == MANUAL:
        return None
    for pattern, build in _PRESETS:
        match = pattern.fullmatch(normalized)
        if match:
            return build(match, text)
    if normalized.split(" ", 1)[0] in _PRESET_WORDS:
        raise ScheduleSyntaxError(
            f"{text!r} starts like a preset but does not match one; the presets are: "
            + "; ".join(PRESET_FORMS)
        )
    expression = " ".join(text.split())
    if not is_valid_cron(expression):
        raise ScheduleSyntaxError(
            f"{text!r} is neither a preset ({'; '.join(PRESET_FORMS)}) nor a valid cron "
            "expression (five fields: minute hour day-of-month month day-of-week, e.g. "
            "'0 6 * * 0#2,0#4' for 06:00 on the 2nd and 4th Sunday)"
        )
    return Cadence(text, expression, cron_slug(expression))
