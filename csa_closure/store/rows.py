"""Result rows as the dataclasses the code reads: one rule for every reader, not a field
list restated per query."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sqlalchemy import Column, Table

T = TypeVar("T")


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def from_row(cls: type[T], row: Any, **given: Any) -> T:
    """A ``cls`` (a dataclass) from a result ``row``: each field from the row's column of the
    same name, except those ``given`` (values the caller derived or converted). Cheap enough
    for hundreds of thousands of rows: the field names are worked out once per class."""
    values = {name: getattr(row, name) for name in _field_names(cls) if name not in given}
    return cls(**values, **given)


def columns_for(table: Table, cls: type[Any]) -> list[Column[Any]]:
    """``table``'s columns named like ``cls``'s fields, in field order (a field the table
    has no column for is left out)."""
    return [table.c[f.name] for f in dataclasses.fields(cls) if f.name in table.c]
