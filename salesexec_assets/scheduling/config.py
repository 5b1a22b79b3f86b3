"""The scheduling file: per report, when it is pulled, what, how it is stored, retries.

One YAML file (``SALESEXEC_CONFIG``, default ``salesexec.yaml`` in the working directory)
holds the connector's scheduling, update-method and retry panes for every report. It is
validated when the definitions load: any mistake stops the code location with an error
that names the key (``reports.all_leads.target.days_back_start``) and the problem, rather
than surfacing as a schedule that silently pulls the wrong days. See
``salesexec.example.yaml`` for every option.

No file means what the connector does by default: every report manual, replace, no retry.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from salesexec_assets.api.contract import LEAD_RECORD, REPORTS, REPORTS_BY_NAME, Pull, Report
from salesexec_assets.loading import WriteMode
from salesexec_assets.scheduling.presets import Cadence, ScheduleSyntaxError, parse_cadence
from salesexec_assets.settings import CONFIG_VAR

DEFAULT_CONFIG_FILE = "salesexec.yaml"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_RETRY_DELAY = timedelta(minutes=1)
DEFAULT_POLL_EVERY = timedelta(minutes=15)
DEFAULT_LOOKBACK = timedelta(days=1)
MIN_POLL_EVERY = timedelta(seconds=30)
DEFAULT_QUIET_PERIOD = timedelta(seconds=60)
MAX_QUIET_PERIOD = timedelta(hours=1)
# Schedules and sensors start stopped unless the file says default_status: running, so
# that copying the example does not launch runs the moment `dagster dev` starts.
DEFAULT_STATUSES = ("running", "stopped")
DEFAULT_STATUS_KEY = "default_status"

LEAD_REPORTS: tuple[str, ...] = tuple(r.name for r in REPORTS if r.record is LEAD_RECORD)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ConfigError(ValueError):
    """A scheduling file that cannot be used; ``key`` is the dotted path of the culprit."""

    def __init__(self, key: str, problem: str, source: str = "") -> None:
        self.key = key
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}")


class UpdateMethod(str, Enum):
    """The connector's update methods."""

    REPLACE = "replace"  # the pulled partitions are replaced whole
    APPEND = "append"  # every pull is kept, stamped with _loaded_at
    MERGE = "merge"  # replace, plus one current row per lead in salesexec.leads
    PARTITION = "partition"  # replace, then drop partitions older than retention_days


@dataclass(frozen=True)
class Target:
    """Which partitions a tick pulls, as days back from the tick's date (both included).

    ``days_back: 1`` is (1, 1); ``days_back_start: 10, days_back_end: 5`` is (10, 5);
    ``latest`` is (0, 0): today's partition, the newest one that exists.
    """

    start_days_back: int
    end_days_back: int
    latest: bool = False

    @property
    def day_count(self) -> int:
        return self.start_days_back - self.end_days_back + 1

    @property
    def slug(self) -> str:
        if self.latest:
            return "latest"
        if self.day_count == 1:
            return f"days_back_{self.start_days_back}"
        return f"days_back_{self.start_days_back}_to_{self.end_days_back}"

    def describe(self) -> str:
        if self.latest:
            return "the latest partition (today)"
        if self.day_count == 1:
            return f"the partition {self.start_days_back} day(s) before the tick's date"
        return (
            f"the {self.day_count} partitions from {self.start_days_back} to "
            f"{self.end_days_back} days before the tick's date, in one run"
        )


@dataclass(frozen=True)
class Notify:
    """Where a final failure is posted: a webhook URL, or the variable that holds it.

    Keeping the URL in an environment variable keeps its secret out of the file.
    """

    webhook_url: str | None = field(default=None, repr=False)
    webhook_url_env: str | None = None

    def resolve_url(self) -> str | None:
        if self.webhook_url_env:
            return os.environ.get(self.webhook_url_env, "").strip() or None
        return self.webhook_url


@dataclass(frozen=True)
class Retry:
    """How a failed scheduled pull is retried, and who hears when retries run out."""

    max_retries: int
    delay: timedelta = DEFAULT_RETRY_DELAY
    notify: Notify | None = None

    @property
    def retries(self) -> bool:
        return self.max_retries > 0

    def describe(self) -> str:
        if not self.retries:
            return "not retried"
        return (
            f"retried up to {self.max_retries} time(s), first after about "
            f"{format_duration(self.delay)}, then with exponential backoff and jitter"
        )


NO_RETRY = Retry(max_retries=0)


@dataclass(frozen=True)
class ReportScheduling:
    """The scheduling, update-method and retry panes of one report."""

    report: str
    cadence: Cadence | None = None  # None: manual
    timezone: str = DEFAULT_TIMEZONE
    target: Target | None = None  # None for manual reports
    update_method: UpdateMethod = UpdateMethod.REPLACE
    retention_days: int | None = None
    retry: Retry = NO_RETRY
    alert_if_stale_after: timedelta | None = None
    running: bool = False  # default_status: its schedule (and freshness sensor) start running

    @property
    def scheduled(self) -> bool:
        return self.cadence is not None

    @property
    def write_mode(self) -> WriteMode:
        """How the report's own table is written (merge and partition replace first)."""
        return WriteMode.APPEND if self.update_method is UpdateMethod.APPEND else WriteMode.REPLACE


@dataclass(frozen=True)
class LateChanges:
    """The late-change sensor: polls Last Updated Leads, re-pulls affected partitions."""

    enabled: bool = False
    poll_every: timedelta = DEFAULT_POLL_EVERY
    lookback: timedelta = DEFAULT_LOOKBACK  # how far back the very first poll looks
    reports: tuple[str, ...] = LEAD_REPORTS
    running: bool = False  # enabled and default_status: running

    @property
    def starts_running(self) -> bool:
        return self.enabled and self.running


@dataclass(frozen=True)
class Webhooks:
    """The webhook sensor (``salesexec_webhook_events``): re-pulls the partitions that the
    events in the receiver's inbox touch, once no event arrived for ``quiet_period``."""

    enabled: bool = False
    quiet_period: timedelta = DEFAULT_QUIET_PERIOD
    running: bool = False  # enabled and default_status: running

    @property
    def starts_running(self) -> bool:
        return self.enabled and self.running


@dataclass(frozen=True)
class SchedulingConfig:
    """The whole file; reports it does not mention are manual, replace, no retry."""

    reports: Mapping[str, ReportScheduling] = field(default_factory=dict)
    late_changes: LateChanges = field(default_factory=LateChanges)
    webhooks: Webhooks = field(default_factory=Webhooks)
    source: str = "(defaults)"
    running: bool = False  # the file's default_status: every schedule and sensor starts so

    def for_report(self, name: str) -> ReportScheduling:
        return self.reports.get(name) or ReportScheduling(report=name)

    @property
    def merge_reports(self) -> tuple[str, ...]:
        """Reports feeding salesexec.leads, in contract order."""
        return tuple(
            r.name for r in REPORTS if self.for_report(r.name).update_method is UpdateMethod.MERGE
        )


# --------------------------------------------------------------------------- values


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=26)`` -> ``1d2h`` (the file's own notation)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class _Reader:
    """Reads values out of the parsed YAML, raising ConfigError with the key's path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(key, problem, self.source)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a mapping of {', '.join(allowed)}, not {value!r}")
        for name in value:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.error(
                    f"{key}.{name}" if key else str(name),
                    f"unknown key{hint}; allowed here: {', '.join(allowed)}",
                )
        return value

    def integer(self, value: Any, key: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be a whole number, not {value!r}")
        if value < 0:
            raise self.error(key, f"must not be negative, got {value}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty text, not {value!r}")
        return value.strip()

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {value!r}")
        return value

    def status(self, value: Any, key: str) -> bool:
        """``default_status``: ``running`` (True) or ``stopped`` (False)."""
        if value not in DEFAULT_STATUSES:
            raise self.error(key, f"must be running or stopped, not {value!r}")
        return value == "running"

    def duration(self, value: Any, key: str, *, positive: bool = False) -> timedelta:
        """``90s``, ``15m``, ``2h``, ``1d``, ``1w``, ``1h30m``, or a number of seconds."""
        if isinstance(value, bool):
            raise self.error(key, f"must be a duration like 15m, 2h or 1d, not {value!r}")
        if isinstance(value, (int, float)):
            seconds = float(value)
        elif isinstance(value, str):
            text = value.strip().lower().replace(" ", "")
            if text.startswith("-"):
                raise self.error(key, f"must not be negative, got {value!r}")
            if not text or _DURATION_PART.sub("", text):
                raise self.error(
                    key, f"{value!r} is not a duration; write e.g. 90s, 15m, 2h, 1d, 1w or 1h30m"
                )
            seconds = sum(
                timedelta(**{_DURATION_UNITS[unit]: float(number)}).total_seconds()
                for number, unit in _DURATION_PART.findall(text)
            )
        else:
            raise self.error(key, f"must be a duration like 15m, 2h or 1d, not {value!r}")
        if seconds < 0:
            raise self.error(key, f"must not be negative, got {value!r}")
        if positive and seconds == 0:
            raise self.error(key, "must be longer than zero")
        return timedelta(seconds=seconds)

    def timezone(self, value: Any, key: str) -> str:
        text = self.text(value, key)
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.error(
                key, f"{text!r} is not an IANA time zone (e.g. UTC, America/Chicago)"
            ) from None
        return text


# --------------------------------------------------------------------------- sections

_TOP_KEYS = ("reports", "late_changes", "webhooks", DEFAULT_STATUS_KEY)
_REPORT_KEYS = (
    DEFAULT_STATUS_KEY,
    "schedule",
    "timezone",
    "target",
    "update_method",
    "retention_days",
    "retry",
    "alert_if_stale_after",
)
_TARGET_KEYS = ("days_back", "days_back_start", "days_back_end")
_RETRY_KEYS = ("max_retries", "delay", "notify")
_NOTIFY_KEYS = ("webhook_url", "webhook_url_env")
_LATE_KEYS = ("enabled", "poll_every", "lookback", "reports", DEFAULT_STATUS_KEY)
_WEBHOOK_KEYS = ("enabled", "quiet_period", DEFAULT_STATUS_KEY)


def _target(read: _Reader, value: Any, key: str, report: Report) -> Target:
    if isinstance(value, str) and value.strip().lower() == "latest":
        target = Target(0, 0, latest=True)
    elif isinstance(value, str):
        raise read.error(
            key,
            f"{value!r} is not a target; write latest, {{days_back: N}} or "
            "{days_back_start: N, days_back_end: M}",
        )
    else:
        spec = read.mapping(value, key, _TARGET_KEYS)
        if "days_back" in spec:
            if set(spec) != {"days_back"}:
                raise read.error(
                    key, "give either days_back, or days_back_start with days_back_end, not both"
                )
            days = read.integer(spec["days_back"], f"{key}.days_back")
            target = Target(days, days)
        else:
            missing = [name for name in ("days_back_start", "days_back_end") if name not in spec]
            if missing:
                raise read.error(
                    f"{key}.{missing[0]}",
                    "is required: a relative range needs both days_back_start and days_back_end",
                )
            start = read.integer(spec["days_back_start"], f"{key}.days_back_start")
            end = read.integer(spec["days_back_end"], f"{key}.days_back_end")
            if start < end:
                raise read.error(
                    f"{key}.days_back_start",
                    f"days_back_start ({start}) is smaller than days_back_end ({end}); the "
                    "range runs from days_back_start days ago until days_back_end days ago, "
                    "so the start must be the larger number",
                )
            target = Target(start, end)
    if report.pull is Pull.NOW and (target.start_days_back, target.end_days_back) != (0, 0):
        raise read.error(
            key,
            f"{report.title} only knows the current count, so only today's partition "
            "can be pulled: use target: latest",
        )
    return target


def _notify(read: _Reader, value: Any, key: str) -> Notify:
    spec = read.mapping(value, key, _NOTIFY_KEYS)
    if len(spec) != 1:
        raise read.error(key, "give exactly one of webhook_url or webhook_url_env")
    if "webhook_url_env" in spec:
        name = read.text(spec["webhook_url_env"], f"{key}.webhook_url_env")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise read.error(f"{key}.webhook_url_env", f"{name!r} is not a variable name")
        return Notify(webhook_url_env=name)
    url = read.text(spec["webhook_url"], f"{key}.webhook_url")
    if not url.startswith(("http://", "https://")):
        raise read.error(f"{key}.webhook_url", "must be an http(s) URL")
    return Notify(webhook_url=url)


def _retry(read: _Reader, value: Any, key: str) -> Retry:
    if isinstance(value, str) and value.strip().lower() == "never":
        return NO_RETRY
    if isinstance(value, str):
        raise read.error(key, f"{value!r}: write never, or a mapping with max_retries and delay")
    spec = read.mapping(value, key, _RETRY_KEYS)
    if "max_retries" not in spec:
        raise read.error(f"{key}.max_retries", "is required (0 = do not retry)")
    return Retry(
        max_retries=read.integer(spec["max_retries"], f"{key}.max_retries"),
        delay=read.duration(spec.get("delay", "1m"), f"{key}.delay"),
        notify=_notify(read, spec["notify"], f"{key}.notify") if "notify" in spec else None,
    )


def _update_method(
    read: _Reader, spec: Mapping[str, Any], key: str, report: Report
) -> tuple[UpdateMethod, int | None]:
    """The update method and, for ``partition``, its retention in days."""
    raw = spec.get("update_method", UpdateMethod.REPLACE.value)
    try:
        method = UpdateMethod(str(raw).strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in UpdateMethod)
        raise read.error(f"{key}.update_method", f"{raw!r} is not one of {choices}") from None
    if method is UpdateMethod.MERGE and report.name not in LEAD_REPORTS:
        raise read.error(
            f"{key}.update_method",
            f"merge keeps one current row per lead (salesexec.leads); {report.name} has no "
            f"leads. Lead reports: {', '.join(LEAD_REPORTS)}",
        )
    retention = None
    if "retention_days" in spec:
        if method is not UpdateMethod.PARTITION:
            raise read.error(f"{key}.retention_days", "only applies with update_method: partition")
        retention = read.integer(spec["retention_days"], f"{key}.retention_days", minimum=1)
    elif method is UpdateMethod.PARTITION:
        raise read.error(
            f"{key}.retention_days", "is required with update_method: partition (days to keep)"
        )
    return method, retention


def _report(read: _Reader, name: str, value: Any, key: str, running: bool) -> ReportScheduling:
    report = REPORTS_BY_NAME[name]
    spec = read.mapping(value or {}, key, _REPORT_KEYS)
    try:
        cadence = parse_cadence(read.text(spec.get("schedule", "manual"), f"{key}.schedule"))
    except ScheduleSyntaxError as error:
        raise read.error(f"{key}.schedule", str(error)) from None
    if cadence is None:
        for only_scheduled in ("target", "retry"):
            if only_scheduled in spec:
                raise read.error(
                    f"{key}.{only_scheduled}",
                    "applies to scheduled pulls only, and this report's schedule is manual "
                    "(manual runs are not retried, as in the connector)",
                )
    default_target = "latest" if report.pull is Pull.NOW else {"days_back": 1}
    method, retention = _update_method(read, spec, key, report)
    return ReportScheduling(
        report=name,
        cadence=cadence,
        timezone=read.timezone(spec.get("timezone", DEFAULT_TIMEZONE), f"{key}.timezone"),
        target=_target(read, spec.get("target", default_target), f"{key}.target", report)
        if cadence
        else None,
        update_method=method,
        retention_days=retention,
        retry=_retry(read, spec["retry"], f"{key}.retry") if "retry" in spec else NO_RETRY,
        alert_if_stale_after=read.duration(
            spec["alert_if_stale_after"], f"{key}.alert_if_stale_after", positive=True
        )
        if "alert_if_stale_after" in spec
        else None,
        running=read.status(spec[DEFAULT_STATUS_KEY], f"{key}.{DEFAULT_STATUS_KEY}")
        if DEFAULT_STATUS_KEY in spec
        else running,
    )


def _late_changes(read: _Reader, value: Any, running: bool) -> LateChanges:
    spec = read.mapping(value or {}, "late_changes", _LATE_KEYS)
    reports = spec.get("reports", list(LEAD_REPORTS))
    if not isinstance(reports, list) or not reports:
        raise read.error("late_changes.reports", f"must be a list of {', '.join(LEAD_REPORTS)}")
    for index, name in enumerate(reports):
        if name not in LEAD_REPORTS:
            raise read.error(
                f"late_changes.reports[{index}]",
                f"{name!r} is not a lead report; choose from {', '.join(LEAD_REPORTS)}",
            )
    poll_every = read.duration(spec.get("poll_every", "15m"), "late_changes.poll_every")
    if poll_every < MIN_POLL_EVERY:
        raise read.error("late_changes.poll_every", "must be at least 30s")
    return LateChanges(
        enabled=read.boolean(spec.get("enabled", True), "late_changes.enabled"),
        poll_every=poll_every,
        lookback=read.duration(spec.get("lookback", "1d"), "late_changes.lookback", positive=True),
        reports=tuple(name for name in LEAD_REPORTS if name in reports),
        running=read.status(spec[DEFAULT_STATUS_KEY], f"late_changes.{DEFAULT_STATUS_KEY}")
        if DEFAULT_STATUS_KEY in spec
        else running,
    )


def _webhooks(read: _Reader, value: Any, running: bool) -> Webhooks:
    spec = read.mapping(value or {}, "webhooks", _WEBHOOK_KEYS)
    quiet = read.duration(spec.get("quiet_period", "60s"), "webhooks.quiet_period")
    if quiet > MAX_QUIET_PERIOD:
        raise read.error("webhooks.quiet_period", "must be at most 1h: events would wait too long")
    return Webhooks(
        enabled=read.boolean(spec.get("enabled", True), "webhooks.enabled"),
        quiet_period=quiet,
        running=read.status(spec[DEFAULT_STATUS_KEY], f"webhooks.{DEFAULT_STATUS_KEY}")
        if DEFAULT_STATUS_KEY in spec
        else running,
    )


def unknown_report(name: object) -> str:
    """The problem of a name that is no report, with the closest report name."""
    close = difflib.get_close_matches(str(name), list(REPORTS_BY_NAME), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown report{hint}; the reports are: {', '.join(REPORTS_BY_NAME)}"


def parse_scheduling_config(data: Any, source: str = "(inline)") -> SchedulingConfig:
    """Validate parsed YAML; raises ConfigError naming the first bad key."""
    read = _Reader(source)
    top = read.mapping(data if data is not None else {}, "", _TOP_KEYS)
    reports_value = top.get("reports") or {}
    if not isinstance(reports_value, Mapping):
        raise read.error("reports", "must map report names to their settings")
    running = (
        read.status(top[DEFAULT_STATUS_KEY], DEFAULT_STATUS_KEY)
        if DEFAULT_STATUS_KEY in top
        else False
    )
    reports: dict[str, ReportScheduling] = {}
    for name, value in reports_value.items():
        key = f"reports.{name}"
        if name not in REPORTS_BY_NAME:
            raise read.error(key, unknown_report(name))
        reports[name] = _report(read, name, value, key, running)
    late = (
        _late_changes(read, top["late_changes"], running)
        if "late_changes" in top
        else LateChanges()
    )
    webhooks = (
        _webhooks(read, top["webhooks"], running) if "webhooks" in top else Webhooks()
    )
    return SchedulingConfig(
        reports=reports, late_changes=late, webhooks=webhooks, source=source, running=running
    )


def config_path(environ: Mapping[str, str] | None = None) -> tuple[Path, bool]:
    """The file to read, and whether it was named explicitly by ``SALESEXEC_CONFIG``."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_VAR, "").strip()
    return (Path(named), True) if named else (Path(DEFAULT_CONFIG_FILE), False)


def load_scheduling_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> SchedulingConfig:
    """Read and validate the scheduling file.

    The default file may be absent (every report manual); a file named by
    ``SALESEXEC_CONFIG`` or by ``path`` must exist, since a typo there would otherwise
    silently turn every schedule off.
    """
    if path is not None:
        file, explicit = Path(path), True
    else:
        file, explicit = config_path(environ)
    if not file.exists():
        if explicit:
            raise ConfigError(CONFIG_VAR, f"{file} does not exist", str(file))
        return SchedulingConfig()
    text = file.read_text(encoding="utf-8")
    try:
        refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), str(file))
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError("(file)", f"is not valid YAML: {error}", str(file)) from None
    return parse_scheduling_config(data, str(file))


def refuse_duplicate_keys(node: yaml.Node | None, source: str, path: str = "") -> None:
    """A key given twice in one mapping is an error naming it: YAML loaders keep the last
    one silently, so a second ``schedule:`` would quietly replace the first."""
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            refuse_duplicate_keys(item, source, f"{path}[{index}]")
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        name = str(key_node.value)
        key = f"{path}.{name}" if path else name
        line = key_node.start_mark.line + 1
        if name in seen and name != "<<":  # merge keys (<<: *anchor) may repeat
            raise ConfigError(
                key,
                f"is given twice (lines {seen[name]} and {line}); YAML would silently keep "
                "the last one: remove one of them",
                source,
            )
        seen[name] = line
        refuse_duplicate_keys(value_node, source, key)
