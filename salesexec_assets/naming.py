"""Column names: the API's PascalCase fields in snake_case.

``LeadUID`` -> ``lead_uid``, ``DateAddedUtc`` -> ``date_added_utc``, a lead type field
``LoanAmount`` -> ``field_loan_amount``. Acronyms stay one word (``UID``, ``ID``).
"""

from __future__ import annotations

import re
from functools import lru_cache

FIELD_COLUMN_PREFIX = "field_"

_ACRONYM_THEN_WORD = re.compile(r"([A-Z]+)([A-Z][a-z])")
_LOWER_THEN_UPPER = re.compile(r"([a-z0-9])([A-Z])")
_NOT_IDENTIFIER = re.compile(r"[^0-9a-zA-Z]+")


@lru_cache(maxsize=4096)  # called for every field of every record: names repeat
def snake_case(name: str) -> str:
    """``LeadTypeUID`` -> ``lead_type_uid``; any other character becomes ``_``."""
    text = _ACRONYM_THEN_WORD.sub(r"\1_\2", name)
    text = _LOWER_THEN_UPPER.sub(r"\1_\2", text)
    text = _NOT_IDENTIFIER.sub("_", text).strip("_").lower()
    text = re.sub(r"_+", "_", text)
    if not text:
        return "unnamed"
    return f"_{text}" if text[0].isdigit() else text


@lru_cache(maxsize=4096)
def field_column(field_name: str) -> str:
    """The column of a lead type's own field: ``LoanAmount`` -> ``field_loan_amount``."""
    return FIELD_COLUMN_PREFIX + snake_case(field_name)
