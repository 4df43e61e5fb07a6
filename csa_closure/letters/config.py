"""Letter templates from configuration: which Notify template each letter uses, and what its
placeholders are filled with.

The default ships inside the package (``csa_closure/letters/letters.toml``, read with
``importlib.resources`` so an installed wheel has it). An operator points
``CSA_CLOSURE_LETTERS_CONFIG`` (or ``--letters-config``) at another file for the live service's
template ids. Every file is checked in full when it is loaded; the first problem is refused with
the file, the key and what to do.

Format::

    version = 1
    example = false                    # true: the template ids are not a live service's

    [window]
    response_days = 60                 # response deadline = letter date + 60 days
    reminder_after_days = 21           # reminder due = letter date + 21 days

    [templates.representation.PWC]     # one table per letter: purpose, then recipient
    template_id = "a UUID from Notify"
    # placeholder name in the Notify template = the field it is filled with
    placeholders = { name = "recipient_name", reply_by = "response_deadline" }
    # or, when the placeholders are named like the fields:
    # placeholders = ["recipient_name", "response_deadline"]

The address (``address_line_1`` ... ``address_line_7``) is always sent and is not listed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from csa_closure.errors import InputError
from csa_closure.letters.fields import FIELDS_FOR_PURPOSE, RESERVED_PLACEHOLDERS, LetterField
from csa_closure.letters.kinds import ALLOWED_LETTERS, LetterKind, LetterPurpose, Recipient

CONFIG_ENV = "CSA_CLOSURE_LETTERS_CONFIG"
BUNDLED_NAME = "letters.toml"
BUNDLED_SOURCE = "bundled letters.toml"
CONFIG_VERSION = 1

_TOP_KEYS = frozenset({"version", "example", "window", "templates"})
_WINDOW_KEYS = frozenset({"response_days", "reminder_after_days"})
_TEMPLATE_KEYS = frozenset({"template_id", "placeholders"})
_FOLD = str.maketrans("", "", " _-")
_PLACEHOLDER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ \-]{0,63}$")


class LettersConfigError(InputError):
    """The letters configuration is malformed; nothing was sent or written."""


@dataclass(frozen=True)
class TemplateConfig:
    """One letter's Notify template and its placeholders, in the template's order."""

    kind: LetterKind
    template_id: str
    placeholders: tuple[tuple[str, LetterField], ...]

    @property
    def placeholder_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.placeholders)

    @property
    def fields(self) -> frozenset[LetterField]:
        return frozenset(f for _, f in self.placeholders)


@dataclass(frozen=True)
class LettersConfig:
    templates: Mapping[LetterKind, TemplateConfig] = field(repr=False)
    response_days: int = 60
    reminder_after_days: int = 21
    example: bool = False
    source: str = BUNDLED_SOURCE
    sha256: str = ""  # of the file's bytes: record it with the batch it was used for

    def template(self, kind: LetterKind) -> TemplateConfig:
        try:
            return self.templates[kind]
        except KeyError:
            raise LettersConfigError(f"{self.source}: no template for {kind.key}") from None


def bundled_config_text() -> str:
    return resources.files(__package__).joinpath(BUNDLED_NAME).read_text(encoding="utf-8")


def load_letters_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> LettersConfig:
    """The configuration at ``path``, else at ``$CSA_CLOSURE_LETTERS_CONFIG``, else the bundled
    default. Raises ``LettersConfigError`` naming the problem."""
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(CONFIG_ENV) or None
    if chosen is None:
        return parse_letters_config(bundled_config_text(), source=BUNDLED_SOURCE)
    file = Path(chosen)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise LettersConfigError(
            f"cannot read the letters configuration {file}: {exc.strerror or exc}"
            f" (set {CONFIG_ENV} to a readable TOML file, or unset it for the default)"
        ) from None
    return parse_letters_config(text, source=str(file))


def parse_letters_config(text: str, *, source: str = "letters configuration") -> LettersConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LettersConfigError(f"{source}: not valid TOML: {exc}") from None
    _only_keys(data, _TOP_KEYS, source, "")
    version = data.get("version")
    if version != CONFIG_VERSION:
        raise LettersConfigError(f"{source}: version: expected {CONFIG_VERSION}, found {version!r}")
    example = data.get("example", False)
    if not isinstance(example, bool):
        raise LettersConfigError(f"{source}: example: must be true or false")
    response_days, reminder_days = _window(data.get("window", {}), source)
    templates = _templates(data.get("templates"), source)
    return LettersConfig(
        templates=templates,
        response_days=response_days,
        reminder_after_days=reminder_days,
        example=example,
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def _only_keys(table: Mapping[str, Any], allowed: frozenset[str], source: str, at: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        where = f"{at}." if at else ""
        raise LettersConfigError(
            f"{source}: {where}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _window(table: Any, source: str) -> tuple[int, int]:
    if not isinstance(table, dict):
        raise LettersConfigError(f"{source}: window: must be a table")
    _only_keys(table, _WINDOW_KEYS, source, "window")
    response = table.get("response_days", 60)
    reminder = table.get("reminder_after_days", 21)
    for key, value in (("response_days", response), ("reminder_after_days", reminder)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 366:
            raise LettersConfigError(
                f"{source}: window.{key}: must be a whole number of days from 1 to 366"
            )
    if reminder >= response:
        raise LettersConfigError(
            f"{source}: window.reminder_after_days: must be before the deadline"
            f" ({reminder} is not less than response_days {response})"
        )
    return response, reminder


def _templates(table: Any, source: str) -> dict[LetterKind, TemplateConfig]:
    if not isinstance(table, dict):
        raise LettersConfigError(f"{source}: templates: missing (one table per letter)")
    found: dict[LetterKind, TemplateConfig] = {}
    for purpose_name, by_recipient in table.items():
        try:
            purpose = LetterPurpose(purpose_name)
        except ValueError:
            raise LettersConfigError(
                f"{source}: templates.{purpose_name}: not a letter purpose"
                f" (one of {', '.join(p.value for p in LetterPurpose)})"
            ) from None
        if not isinstance(by_recipient, dict):
            raise LettersConfigError(
                f"{source}: templates.{purpose_name}: must be a table per recipient (PWC, NRP)"
            )
        for recipient_name, body in by_recipient.items():
            at = f"templates.{purpose_name}.{recipient_name}"
            try:
                kind = LetterKind(purpose, Recipient(recipient_name))
            except ValueError:
                raise LettersConfigError(f"{source}: {at}: recipient must be PWC or NRP") from None
            if kind not in ALLOWED_LETTERS:
                raise LettersConfigError(
                    f"{source}: {at}: there is no {purpose.value} letter to the {kind.recipient}"
                )
            found[kind] = _template(kind, body, source, at)
    missing = sorted(k.key for k in ALLOWED_LETTERS - set(found))
    if missing:
        raise LettersConfigError(
            f"{source}: templates.{missing[0]}: missing (every letter needs one)"
        )
    _check_shared_ids(found, source)
    return dict(sorted(found.items()))


def _template(kind: LetterKind, body: Any, source: str, at: str) -> TemplateConfig:
    if not isinstance(body, dict):
        raise LettersConfigError(f"{source}: {at}: must be a table")
    _only_keys(body, _TEMPLATE_KEYS, source, at)
    template_id = body.get("template_id")
    try:
        if not isinstance(template_id, str):
            raise ValueError
        template_id = str(uuid.UUID(template_id))
    except ValueError:
        raise LettersConfigError(
            f"{source}: {at}.template_id: must be the template's ID from Notify (a UUID)"
        ) from None
    return TemplateConfig(
        kind, template_id, _placeholders(kind, body.get("placeholders"), source, at)
    )


def _placeholders(
    kind: LetterKind, raw: Any, source: str, at: str
) -> tuple[tuple[str, LetterField], ...]:
    if raw is None:
        return ()
    if isinstance(raw, list):
        pairs = [(name, name) for name in raw]
    elif isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        raise LettersConfigError(f"{source}: {at}.placeholders: must be a list or a table")
    allowed = FIELDS_FOR_PURPOSE[kind.purpose]
    seen: set[str] = set()
    result: list[tuple[str, LetterField]] = []
    for name, field_name in pairs:
        where = f"{source}: {at}.placeholders.{name}"
        if not isinstance(name, str) or not _PLACEHOLDER_NAME.fullmatch(name):
            raise LettersConfigError(
                f"{where}: a placeholder name is letters, digits, spaces, - and _ (up to 64)"
            )
        folded = _fold(name)
        if folded in {_fold(r) for r in RESERVED_PLACEHOLDERS}:
            raise LettersConfigError(f"{where}: the address placeholders are filled in already")
        if folded in seen:
            raise LettersConfigError(f"{where}: listed twice")
        seen.add(folded)
        try:
            letter_field = LetterField(field_name)
        except ValueError:
            raise LettersConfigError(
                f"{where}: {field_name!r} is not a letter field"
                f" (one of {', '.join(f.value for f in LetterField)})"
            ) from None
        if letter_field not in allowed:
            raise LettersConfigError(
                f"{where}: a {kind.purpose.value} letter cannot carry {letter_field.value}"
            )
        result.append((name, letter_field))
    return tuple(result)


def _fold(name: str) -> str:
    """Notify matches placeholder names ignoring case, spaces, underscores and hyphens."""
    return name.translate(_FOLD).lower()


def _check_shared_ids(found: Mapping[LetterKind, TemplateConfig], source: str) -> None:
    by_id: dict[str, TemplateConfig] = {}
    for kind in sorted(found):
        template = found[kind]
        other = by_id.setdefault(template.template_id, template)
        if other is not template and other.placeholders != template.placeholders:
            raise LettersConfigError(
                f"{source}: templates.{kind.key}.template_id: the same template as"
                f" {other.kind.key} but with other placeholders"
            )
