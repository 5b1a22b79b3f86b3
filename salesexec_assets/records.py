"""API records -> warehouse rows: snake_case columns, UTC timestamps, fields kept twice.

A lead's ``Fields`` object is stored whole in the ``fields`` JSON column (no value is
ever lost, whatever happens to the flattened columns) AND flattened into one
``field_<snake_name>`` column per field, which is what people query. Fields appear and
change type over time; the warehouse adds and widens those columns as they come.

A record that breaks the contract (a missing or non-numeric id, an unparseable
timestamp, a window field outside the requested window) is not dropped silently: it is
quarantined, whole, with the reason, in the report's ``<table>__quarantine`` table and
counted in the materialization's metadata.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain, repeat
from typing import Any

from salesexec_assets.api import contract
from salesexec_assets.api.contract import FieldType, Report
from salesexec_assets.api.timestamps import (
    TimestampError,
    parse_api_timestamp,
    parse_api_timestamp_column,
)
from salesexec_assets.naming import field_column, snake_case
from salesexec_assets.partitions import day_window_utc
from salesexec_assets.warehouse import ColumnType, TableSpec, fits_bigint

SCHEMA = "salesexec"
PARTITION_COLUMN = "partition_date"
FIELDS_COLUMN = snake_case(contract.LEAD_FIELDS_OBJECT)
QUARANTINE_SUFFIX = "__quarantine"

COLUMN_TYPES: dict[FieldType, ColumnType] = {
    FieldType.INTEGER: ColumnType.BIGINT,
    FieldType.TEXT: ColumnType.VARCHAR,
    FieldType.TIMESTAMP: ColumnType.TIMESTAMP,
    FieldType.OBJECT: ColumnType.JSON,
}


class RecordError(ValueError):
    """A record that breaks the contract; it goes to quarantine with this reason."""


def table_spec(report: Report, schema: str = SCHEMA) -> TableSpec:
    """The report's table: the contract's fields in snake_case, plus the partition date."""
    columns = {snake_case(name): COLUMN_TYPES[kind] for name, kind in report.record.items()}
    columns[PARTITION_COLUMN] = ColumnType.DATE
    return TableSpec(schema=schema, name=report.name, columns=columns)


def quarantine_spec(report: Report, schema: str = SCHEMA) -> TableSpec:
    """Where the report's rejected records go, whole, with the reason."""
    return TableSpec(
        schema=schema,
        name=report.name + QUARANTINE_SUFFIX,
        columns={
            "lead_type_uid": ColumnType.BIGINT,
            "reason": ColumnType.VARCHAR,
            "record": ColumnType.JSON,
            PARTITION_COLUMN: ColumnType.DATE,
        },
    )


def key_columns(report: Report) -> tuple[str, ...]:
    return tuple(snake_case(name) for name in report.key)


def window_column(report: Report) -> str | None:
    return snake_case(report.window_field) if report.window_field else None


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    integral = (
        isinstance(value, int)
        or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
        or (isinstance(value, float) and value.is_integer())
    )
    if not integral:
        raise ValueError(f"{value!r} is not an integer")
    number = int(value)
    if not fits_bigint((number,)):  # a declared integer column is BIGINT
        raise ValueError(f"{value!r} is outside the 64-bit integer range")
    return number


def _text(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return json.dumps(value)


def _timestamp(value: Any) -> datetime:
    try:
        return parse_api_timestamp(value)
    except TimestampError as error:
        raise ValueError(str(error)) from None


_CONVERTERS: dict[FieldType, Callable[[Any], Any]] = {
    FieldType.INTEGER: _integer,
    FieldType.TEXT: _text,
    FieldType.TIMESTAMP: _timestamp,
}


def _flat_value(value: Any) -> Any:
    """A field's value for its own column: scalars as they are, nested values as JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


@dataclass(frozen=True)
class _Field:
    """One contract field of a report, with everything ``row`` needs precomputed."""

    name: str
    column: str
    kind: FieldType
    convert: Callable[[Any], Any] | None  # None: the ``Fields`` object
    required: bool


_FIELDS_BY_REPORT: dict[str, tuple[_Field, ...]] = {}


def _fields_of(report: Report) -> tuple[_Field, ...]:
    """The report's fields, prepared once per report (not once per record)."""
    fields = _FIELDS_BY_REPORT.get(report.name)
    if fields is None:
        required = {*report.key, report.window_field}
        fields = tuple(
            _Field(name, snake_case(name), kind, _CONVERTERS.get(kind), name in required)
            for name, kind in report.record.items()
        )
        _FIELDS_BY_REPORT[report.name] = fields
    return fields


class DayLocator:
    """Which of the pulled days a naive-UTC instant falls in, by bisecting day bounds.

    Cheaper per record than a time-zone conversion, and exact: the bounds are the
    days' local midnights (23- or 25-hour days included), computed once per pull.
    """

    def __init__(self, days: Iterable[date], zone: str) -> None:
        self.days = sorted(days)
        self._bounds = [day_window_utc(day, day, zone) for day in self.days]
        self._starts = [start for start, _ in self._bounds]

    def __call__(self, instant: datetime) -> date | None:
        index = bisect_right(self._starts, instant) - 1
        if index >= 0 and instant < self._bounds[index][1]:
            return self.days[index]
        return None


_NoneType = type(None)

# The Python type a converted value of each field type has: a column whose values all
# have it (or are None) needs no per-value conversion. Timestamps always do (str -> datetime).
_NATIVE: dict[FieldType, type] = {FieldType.INTEGER: int, FieldType.TEXT: str}


@dataclass
class ColumnBatch:
    """Records converted column by column, and the ones that need the per-record path.

    ``columns`` holds one list per column, all of ``size`` values; ``others`` are the
    records left out of it (an odd shape or an odd value somewhere), to be converted or
    quarantined one by one by :meth:`RowBuilder.row`, the reference.
    """

    columns: dict[str, list[Any]]
    size: int
    others: list[Any]
    others_at: list[int]  # where each of ``others`` was in the records given


@dataclass(frozen=True)
class RowBuilder:
    """Turns one report's records into rows for one set of partition days.

    Two paths give the same rows: :meth:`row` converts one record (and says why one
    cannot be converted), :meth:`columns` converts a page column by column, handing
    every record with anything unusual about it to :meth:`row`. Most pages are plain,
    and a column of plain values costs a few C-level passes instead of a Python dict
    per record.
    """

    report: Report
    locate_day: DayLocator  # a window-field instant -> its partition day, or None
    fixed_day: date | None = None  # for aggregate and "now" reports: the day being pulled

    def row(self, record: Any) -> dict[str, Any]:
        """One record as a row, or a RecordError saying why it cannot be one."""
        if not isinstance(record, dict):
            raise RecordError(f"a record must be a JSON object, got {type(record).__name__}")
        row: dict[str, Any] = {}
        for field in _fields_of(self.report):
            value = record.get(field.name)
            if value is None:
                if field.required:
                    raise RecordError(f"{field.name} is missing")
                row[field.column] = None
            elif field.convert is None:
                row.update(self._fields_columns(field, value))
            else:
                try:
                    row[field.column] = field.convert(value)
                except ValueError as error:
                    raise RecordError(f"{field.name}: {error}") from None
        if not record.keys() <= self.report.record.keys():
            for name, value in record.items():  # fields the contract does not know yet: kept
                if name not in self.report.record:
                    row.setdefault(snake_case(name), _flat_value(value))
        row[PARTITION_COLUMN] = self._partition(row)
        return row

    def columns(self, records: Sequence[Any]) -> ColumnBatch:
        """Records as columns; the records :meth:`row` must see one by one are set apart.

        A record takes the column path only when it is an object with contract fields
        only and every value converts; its row is then the one :meth:`row` would build.
        """
        known = self.report.record.keys()
        plain = [record for record in records if type(record) is dict and record.keys() <= known]
        plain_at: list[int] | None = None  # where each of ``plain`` is in ``records``
        others_at: list[int] = []
        if len(plain) != len(records):
            plain_at = []
            for index, record in enumerate(records):
                is_plain = type(record) is dict and record.keys() <= known
                (plain_at if is_plain else others_at).append(index)
        odd: set[int] = set()  # indexes (in ``plain``) of records with an unusual value
        columns: dict[str, list[Any]] = {}
        for field in _fields_of(self.report):
            values = list(map(dict.get, plain, repeat(field.name)))  # one C loop per field
            if field.convert is None:
                columns.update(_object_columns(field, values, odd))
            else:
                columns[field.column] = _converted_column(field, values, odd)
        columns[PARTITION_COLUMN] = self._partition_column(len(plain), columns, odd)
        if odd:
            keep = [index for index in range(len(plain)) if index not in odd]
            columns = {name: [values[index] for index in keep] for name, values in columns.items()}
            at = plain_at
            others_at.extend(index if at is None else at[index] for index in sorted(odd))
        others = [records[index] for index in others_at]
        return ColumnBatch(columns, len(plain) - len(odd), others, others_at)

    @staticmethod
    def _fields_columns(field: _Field, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise RecordError(f"{field.name} must be an object, got {type(value).__name__}")
        columns = {field_column(name): _flat_value(item) for name, item in value.items()}
        columns[field.column] = _object_text(value)
        return columns

    def quarantine_day(self, record: Any, fallback: date) -> date:
        """The day a rejected record is quarantined under: its own day when its window
        field parses into one of the pulled days, so that re-running that day (once the
        source is fixed) replaces its quarantine too; else ``fallback``."""
        if self.fixed_day is not None:
            return self.fixed_day
        value = record.get(self.report.window_field) if isinstance(record, dict) else None
        try:
            day = self.locate_day(parse_api_timestamp(value)) if value is not None else None
        except TimestampError:
            day = None
        return day or fallback

    def _partition(self, row: dict[str, Any]) -> date:
        if self.fixed_day is not None:
            return self.fixed_day
        instant = row[window_column(self.report)]  # type: ignore[index]
        day = self.locate_day(instant)
        if day is None:
            raise RecordError(
                f"{self.report.window_field} {instant.isoformat()} is outside the requested days"
            )
        return day

    def _partition_column(
        self, size: int, columns: dict[str, list[Any]], odd: set[int]
    ) -> list[Any]:
        """Each row's partition day, as ``_partition`` gives it; no day: the row is odd."""
        if self.fixed_day is not None:
            return [self.fixed_day] * size
        locate = self.locate_day
        instants = columns[window_column(self.report)]  # type: ignore[index]
        present = [instant for instant in instants if instant is not None]
        if len(present) == size and size:  # the usual batch: every row has its instant
            first, last = locate(min(present)), locate(max(present))
            if first is not None and first == last:  # all in one day: no search per row
                return [first] * size
        days = [None if instant is None else locate(instant) for instant in instants]
        odd.update(index for index, day in enumerate(days) if day is None)
        return days


def _converted_column(field: _Field, values: list[Any], odd: set[int]) -> list[Any]:
    """One contract field's values converted; indexes of values that need ``row`` go to odd."""
    kinds = set(map(type, values))
    if _NoneType in kinds and field.required:
        odd.update(index for index, value in enumerate(values) if value is None)
    native = _NATIVE.get(field.kind)
    if native is not None and kinds <= {native, _NoneType} and _fits(values, native):
        return values  # already what the column holds: the common case
    if field.kind is FieldType.TIMESTAMP:
        instants = parse_api_timestamp_column(values)
        if instants is not None:
            return instants
    convert = field.convert
    assert convert is not None
    converted: list[Any] = []
    append = converted.append
    for index, value in enumerate(values):
        if value is None:
            append(None)
            continue
        try:
            append(convert(value))
        except ValueError:
            odd.add(index)
            append(None)
    return converted


def _fits(values: list[Any], native: type) -> bool:
    """Whether integers all fit the column (BIGINT); other types always do."""
    return native is not int or fits_bigint([value for value in values if value is not None])


def _object_columns(field: _Field, values: list[Any], odd: set[int]) -> dict[str, list[Any]]:
    """A ``Fields`` object per record: kept whole as JSON text and flattened, as ``row`` does.

    Records whose object is not an object, or has two names that share a column (which
    ``row`` resolves by order), are left to ``row``.
    """
    kinds = set(map(type, values))
    if not kinds <= {dict, _NoneType}:
        odd.update(
            i for i, value in enumerate(values) if value is not None and type(value) is not dict
        )
    every_object = kinds == {dict}
    objects = values if every_object else [v if type(v) is dict else None for v in values]
    names: dict[str, None] = {}
    if every_object:  # every name, in order of first appearance, in one C loop
        names = dict.fromkeys(chain.from_iterable(objects))
    else:
        for value in objects:
            if value:
                names.update(dict.fromkeys(value))
    by_column: dict[str, list[str]] = {}
    for name in names:
        by_column.setdefault(field_column(name), []).append(name)
    columns: dict[str, list[Any]] = {}
    for column, shared in by_column.items():
        if len(shared) > 1:  # e.g. "Zip Code" and "ZipCode": which wins depends on order
            odd.update(
                index
                for index, value in enumerate(objects)
                if value and sum(name in value for name in shared) > 1
            )
        if len(shared) == 1 and every_object:  # the usual case: one C loop
            column_values = list(map(dict.get, objects, repeat(shared[0])))
        else:
            column_values = [None] * len(objects)
            for name in shared:
                for index, value in enumerate(objects):
                    if value and name in value:
                        column_values[index] = value[name]
        if set(map(type, column_values)) & {dict, list}:
            column_values = [_flat_value(item) for item in column_values]
        columns[column] = column_values
    columns[field.column] = (
        list(map(_object_text, objects))
        if every_object
        else [None if value is None else _object_text(value) for value in objects]
    )
    return columns


def _sorted_json_encoder() -> Callable[[dict[str, Any]], str]:
    """``json.dumps(value, sort_keys=True)`` for an object, the same text, without what
    ``dumps`` does in Python per call (an encoder built, its C encoder built)."""
    encoder = json.JSONEncoder(sort_keys=True)
    make_c_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_c_encoder is None:  # a Python without the C accelerator
        return encoder.encode
    # exactly what JSONEncoder.iterencode(value, _one_shot=True) builds for these options
    markers: dict[int, Any] = {}  # check_circular's; emptied again by every call that ends
    c_encode = make_c_encoder(
        markers,
        encoder.default,
        json.encoder.encode_basestring_ascii,  # ensure_ascii
        encoder.indent,
        encoder.key_separator,
        encoder.item_separator,
        encoder.sort_keys,
        encoder.skipkeys,
        encoder.allow_nan,
    )
    join = "".join

    def encode(value: dict[str, Any]) -> str:
        try:
            return join(c_encode(value, 0))
        except BaseException:  # one that fails midway may leave markers behind
            markers.clear()
            raise

    return encode


# A ``Fields`` object as the ``fields`` column's JSON text (keys sorted: stable)
_object_text: Callable[[dict[str, Any]], str] = _sorted_json_encoder()


def quarantine_row(record: Any, reason: str, lead_type_uid: int, day: date) -> dict[str, Any]:
    """A rejected record, whole, with the reason, under ``day``
    (:meth:`RowBuilder.quarantine_day`)."""
    return {
        "lead_type_uid": lead_type_uid,
        "reason": reason,
        "record": json.dumps(record, sort_keys=True, default=str),
        PARTITION_COLUMN: day,
    }
