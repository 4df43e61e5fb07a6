"""The one serialiser: results (dataclasses, dates, enums, decimals, paths) as plain JSON values.

A result dataclass whose JSON is its fields, in order, mixes in :class:`JsonFields` instead of
writing a ``to_json`` that restates them; ``json_extra`` names properties that follow the
fields. A result whose JSON is shaped otherwise keeps its own ``to_json``, which
:func:`jsonable` uses. Keys are the field names (snake_case); money stays integer pence; dates
are ISO ``YYYY-MM-DD`` and instants ISO 8601 (docs/json-output.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any, ClassVar


def jsonable(value: Any) -> Any:
    """Plain JSON values for results built from dataclasses, dates, enums and decimals."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_json", None)
        if to_json is not None:
            return jsonable(to_json())
        return fields_json(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, PurePath):
        return str(value)
    return value


def fields_json(value: Any) -> dict[str, Any]:
    """A dataclass instance's fields in order, then its ``json_extra`` properties, as JSON."""
    data = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    for name in getattr(type(value), "json_extra", ()):
        data[name] = jsonable(getattr(value, name))
    return data


class JsonFields:
    """Mixin for a result dataclass: ``to_json()`` is its fields (then ``json_extra``)."""

    json_extra: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return fields_json(self)
