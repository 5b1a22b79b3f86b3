"""The column types every destination writes, the widening lattice, and value coercion.

Columns beyond the declared ones are discovered from the rows and typed by inference.
When a later value no longer fits its column, the column is widened along a small
lattice instead of failing the run or truncating the value::

    BIGINT -> DOUBLE -> VARCHAR      BOOLEAN, TIMESTAMP, DATE, JSON -> VARCHAR

``BIGINT`` and ``DOUBLE`` meet at ``DOUBLE`` so numbers stay numeric (an integer column
that meets ``1.5`` can still be summed); every other mix meets at ``VARCHAR``, which
holds any value as text. Widening never narrows, so a value once stored stays storable,
and ``widen`` is commutative, associative and idempotent: the final type of a column does
not depend on the order pages arrive in. Existing values are converted by the database
(``ALTER ... TYPE``) and new values by :func:`coerce_value`, which renders text exactly
as DuckDB's (and Postgres') casts do (``true``, ``2.5``, ``2026-01-02 03:04:05.12``),
with one rule of ours on every side: a double that holds an integer (up to 2**53, where
every integer is exact) becomes that integer's text, ``2`` and not ``2.0``. An integer
that went through a DOUBLE column on its way to VARCHAR thus reads as the source sent
it, and the text of a value never depends on how its pages were cut. Declared columns
are never widened: a value that does not fit its declared type is an error.

The lattice is shared by every backend; each maps the types onto its own names
(:data:`POSTGRES_TYPES` for Postgres; DuckDB's names are the enum's values).
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime, timezone
from datetime import time as clock_time
from enum import Enum
from typing import Any

import pandas as pd

_BIGINT_MIN = -(2**63)
_BIGINT_MAX = 2**63 - 1
EXACT_INTEGERS = 2**53  # every integer up to this (included) is exact as a double


class ColumnType(str, Enum):
    """The column types the warehouse writes; values are DuckDB type names."""

    BOOLEAN = "BOOLEAN"
    BIGINT = "BIGINT"
    DOUBLE = "DOUBLE"
    VARCHAR = "VARCHAR"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    JSON = "JSON"


# Postgres' names of the lattice's types: timestamps hold naive UTC, JSON is jsonb.
POSTGRES_TYPES: dict[ColumnType, str] = {
    ColumnType.BOOLEAN: "boolean",
    ColumnType.BIGINT: "bigint",
    ColumnType.DOUBLE: "double precision",
    ColumnType.VARCHAR: "text",
    ColumnType.TIMESTAMP: "timestamp without time zone",
    ColumnType.DATE: "date",
    ColumnType.JSON: "jsonb",
}
_FROM_POSTGRES = {name: kind for kind, name in POSTGRES_TYPES.items()}


def infer_column_type(value: Any) -> ColumnType | None:
    """The narrowest column type that holds ``value``; None for None (it fits any column).

    An integer outside BIGINT's range is typed VARCHAR so its digits are kept exactly;
    dicts and lists are stored as JSON text in a VARCHAR column.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, numbers.Integral):
        return ColumnType.BIGINT if _BIGINT_MIN <= value <= _BIGINT_MAX else ColumnType.VARCHAR
    if isinstance(value, numbers.Real):
        return ColumnType.DOUBLE
    if isinstance(value, str):
        return ColumnType.VARCHAR
    if isinstance(value, datetime):
        return ColumnType.TIMESTAMP
    if isinstance(value, date):
        return ColumnType.DATE
    if isinstance(value, (dict, list, tuple)):
        return ColumnType.VARCHAR
    raise TypeError(f"cannot store a value of type {type(value).__name__}: {value!r}")


def widen(current: ColumnType, incoming: ColumnType) -> ColumnType:
    """The narrowest type holding every value of both (see the module docstring for why)."""
    if current == incoming:
        return current
    if {current, incoming} == {ColumnType.BIGINT, ColumnType.DOUBLE}:
        return ColumnType.DOUBLE
    return ColumnType.VARCHAR


def column_type_of(database_type: str) -> ColumnType:
    """Map a type found in an existing table (DuckDB's or Postgres' name) onto the lattice."""
    name = database_type.upper()
    try:
        return ColumnType(name)
    except ValueError:
        pass
    if database_type.lower() in _FROM_POSTGRES:
        return _FROM_POSTGRES[database_type.lower()]
    if name in {"TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER"}:
        return ColumnType.BIGINT
    if name in {"FLOAT", "REAL"} or name.startswith(("DECIMAL", "NUMERIC")):
        return ColumnType.DOUBLE
    if name.startswith("TIMESTAMP") and "WITH TIME ZONE" not in name and "TZ" not in name:
        return ColumnType.TIMESTAMP
    return ColumnType.VARCHAR


def naive_utc(value: datetime) -> datetime:
    """Naive UTC, the only timestamp form stored (no session time zone involved)."""
    if value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def _timestamp_text(value: datetime) -> str:
    """A timestamp as DuckDB's cast to VARCHAR renders it (trailing fraction zeros dropped)."""
    text = naive_utc(value).isoformat(sep=" ")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "t", "1"}:
            return True
        if text in {"false", "f", "0"}:
            return False
    raise ValueError("not a boolean")


def _to_bigint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and float(value).is_integer()
    ):
        number = int(value)
    elif isinstance(value, str):
        number = int(value.strip())
    else:
        raise ValueError("not an integer")
    if not _BIGINT_MIN <= number <= _BIGINT_MAX:
        raise ValueError("outside the BIGINT range")
    return number


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (numbers.Real, str)):
        return float(value)
    raise ValueError("not a number")


def _to_varchar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if number.is_integer() and abs(number) <= EXACT_INTEGERS:
            return str(int(number))  # as the integer it was: see the module docstring
        return repr(number)  # Python's shortest round-trip form, as DuckDB prints
    if isinstance(value, datetime):
        return _timestamp_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def _to_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return naive_utc(value)
    if isinstance(value, date):
        return datetime.combine(value, clock_time())
    if isinstance(value, str):
        return naive_utc(datetime.fromisoformat(value.strip()))
    raise ValueError("not a timestamp")


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == clock_time():
            return value.date()
        raise ValueError("a timestamp with a time of day is not a date")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value.strip())
    raise ValueError("not a date")


def _to_json(value: Any) -> str:
    if isinstance(value, str):
        json.loads(value)  # raises ValueError (JSONDecodeError) when it is not JSON text
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinity are not JSON")
    return json.dumps(value, default=str)


_COERCERS: dict[ColumnType, Callable[[Any], Any]] = {
    ColumnType.BOOLEAN: _to_boolean,
    ColumnType.BIGINT: _to_bigint,
    ColumnType.DOUBLE: _to_double,
    ColumnType.VARCHAR: _to_varchar,
    ColumnType.TIMESTAMP: _to_timestamp,
    ColumnType.DATE: _to_date,
    ColumnType.JSON: _to_json,
}

# pandas dtypes DuckDB reads without guessing; None becomes NULL in each of them.
_PANDAS_DTYPES: dict[ColumnType, str] = {
    ColumnType.BOOLEAN: "boolean",
    ColumnType.BIGINT: "Int64",
    ColumnType.DOUBLE: "Float64",
    ColumnType.VARCHAR: "object",
    ColumnType.TIMESTAMP: "datetime64[us]",
    ColumnType.DATE: "object",
    ColumnType.JSON: "object",
}


def coerce_value(value: Any, column_type: ColumnType) -> Any:
    """``value`` as a Python value of ``column_type``; None stays None.

    Raises ValueError when the value cannot be represented (``'abc'`` as BIGINT).
    """
    if value is None:
        return None
    try:
        return _COERCERS[column_type](value)
    except (ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"cannot store {value!r} as {column_type.value}: {error}") from error


def fits_bigint(integers: Collection[int]) -> bool:
    """Whether every integer fits a BIGINT column (True when there are none)."""
    return not integers or (min(integers) >= _BIGINT_MIN and max(integers) <= _BIGINT_MAX)


def page_type(values: list[Any]) -> ColumnType | None:
    """The widened type of a page's values for one discovered column (None if all None).

    Works per distinct Python type rather than per value (pages are mostly uniform);
    only integers need every value looked at, for the BIGINT range.
    """
    result: ColumnType | None = None
    for python_type in {type(value) for value in values}:
        if python_type is type(None):
            continue
        sample = next(value for value in values if type(value) is python_type)
        if python_type is int:
            integers = [value for value in values if type(value) is int]
            kind = ColumnType.BIGINT if fits_bigint(integers) else ColumnType.VARCHAR
        else:
            kind = infer_column_type(sample)
        if kind is not None:
            result = kind if result is None else widen(result, kind)
    return result


# The Python type a column type's values already have after coercion; pages whose values
# all have it skip the per-value coercion (the common case, and the hot loop).
_NATIVE_TYPES: dict[ColumnType, type] = {
    ColumnType.BOOLEAN: bool,
    ColumnType.BIGINT: int,
    ColumnType.DOUBLE: float,
    ColumnType.VARCHAR: str,
    ColumnType.DATE: date,
    ColumnType.TIMESTAMP: datetime,
    ColumnType.JSON: str,
}


def _already_coerced(values: list[Any], column_type: ColumnType) -> bool:
    """Whether every value already has the column's Python type (and fits it).

    JSON text is not parsed here: DuckDB's cast checks it during the insert, and a
    failed insert is explained value by value (see :meth:`RowStage.add_columns`).
    """
    native = _NATIVE_TYPES.get(column_type)
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if native is None or not kinds <= {native}:
        return False
    if kinds and column_type == ColumnType.BIGINT:
        return fits_bigint([value for value in values if value is not None])
    if kinds and column_type == ColumnType.TIMESTAMP:
        return all(value.tzinfo is None for value in values if value is not None)
    return True


def coerced_array(
    name: str, values: list[Any], column_type: ColumnType, *, check_each: bool = False
) -> Any:
    """One column's values coerced to its type, as a pandas array DuckDB reads exactly.

    ``check_each`` coerces (and so checks) every value even when the column already
    has the right Python types: it finds the value that made DuckDB refuse an insert.
    """
    if not check_each and _already_coerced(values, column_type):
        return pd.array(values, dtype=_PANDAS_DTYPES[column_type])
    coerce = _COERCERS[column_type]
    coerced: list[Any] = []
    for value in values:
        if value is None:
            coerced.append(None)
            continue
        try:
            coerced.append(coerce(value))
        except (ValueError, TypeError, OverflowError) as error:
            raise ValueError(
                f"column {name!r}: cannot store {value!r} as {column_type.value} ({error})"
            ) from error
    return pd.array(coerced, dtype=_PANDAS_DTYPES[column_type])


def plan_evolution(
    current: Mapping[str, ColumnType], incoming: Mapping[str, ColumnType]
) -> tuple[
    dict[str, ColumnType], list[tuple[str, ColumnType]], list[tuple[str, ColumnType, ColumnType]]
]:
    """What a table of ``current`` columns needs so that rows of ``incoming`` types fit.

    The one schema-evolution rule, rendered as DDL by each backend. Column names match
    case-insensitively (DuckDB's are; the stage refuses names differing only in case).
    Returns the evolved types, the columns to add (name, type) and the columns to widen
    (name, from, to).
    """
    types = dict(current)
    by_key = {name.lower(): name for name in types}
    added: list[tuple[str, ColumnType]] = []
    widened: list[tuple[str, ColumnType, ColumnType]] = []
    for name, wanted in incoming.items():
        existing = by_key.get(name.lower())
        if existing is None:
            types[name] = wanted
            by_key[name.lower()] = name
            added.append((name, wanted))
            continue
        have = types[existing]
        target = widen(have, wanted)
        if target != have:
            types[existing] = target
            widened.append((existing, have, target))
    return types, added, widened


def evolution_report(
    added: list[tuple[str, ColumnType]], widened: list[tuple[str, ColumnType, ColumnType]]
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """What :func:`plan_evolution` changed, as write results report it: the added names,
    and (column, from, to) widenings by type name."""
    return [name for name, _ in added], [(n, have.value, to.value) for n, have, to in widened]
