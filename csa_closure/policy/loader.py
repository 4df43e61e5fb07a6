"""Load a rule set from a directory of TOML files, refusing anything wrong before use.

A rule set directory holds exactly these files (see rules/README.md):

- ``ruleset.toml``: ``format = 1``, ``name``, ``description``;
- ``parameters.toml``: one table per parameter: ``type``, ``value``, ``description``;
- ``reasons.toml``: ``CODE = "description"`` for every reason code a rule may give;
- ``eligibility.toml``: the ``[[PWC]]`` and ``[[SOS]]`` tables, rows in order;
- ``collectability.toml``: the ``[[collectability]]`` table, rows in order.

Every problem found is reported at once, each naming the file, the rule id (or parameter,
reason, table) and what is wrong; the error is a ``RuleSetError`` (an ``InputError``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from csa_closure.domain.states import Outcome
from csa_closure.policy.conditions import Scope, compile_condition
from csa_closure.policy.conditions.types import UsesBrokenParameter
from csa_closure.policy.errors import ConditionError, RuleProblem, RuleSetError
from csa_closure.policy.features import (
    CONDITION_TYPES,
    FEATURE_PARAMETERS,
    NOT_IN_CONDITIONS,
)
from csa_closure.policy.params import (
    Parameter,
    ParameterValueError,
    check_name,
    from_toml,
    parse_type,
)
from csa_closure.policy.ruleset import (
    ALLOWED_OUTCOMES,
    COLLECTABILITY,
    FORMAT_VERSION,
    PWC,
    SOS,
    Reason,
    Rule,
    RuleSet,
    RuleTable,
)
from csa_closure.resources import default_rules_dir

FILES = {
    "ruleset": "ruleset.toml",
    "parameters": "parameters.toml",
    "reasons": "reasons.toml",
    "eligibility": "eligibility.toml",
    "collectability": "collectability.toml",
}
# Which file each table lives in, and under which TOML key.
TABLE_FILES = {PWC: "eligibility", SOS: "eligibility", COLLECTABILITY: "collectability"}

_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_ROW_KEYS = ("id", "description", "when", "outcome", "reason")


def load_rule_set(path: Path | None = None, overrides: Mapping[str, str] | None = None) -> RuleSet:
    """The rule set in directory ``path`` (the default rules when None), with ``overrides``
    (``--set NAME=VALUE``) applied. Raises ``RuleSetError`` naming file, rule and problem."""
    directory = Path(path) if path is not None else default_rules_dir()
    documents = read_documents(directory)
    rule_set = rule_set_from_documents(documents, source=directory)
    return rule_set.with_overrides(overrides) if overrides else rule_set


def read_documents(directory: Path) -> dict[str, dict[str, Any]]:
    """The parsed TOML of each rule file; ``RuleSetError`` if any is missing or malformed."""
    if not directory.is_dir():
        raise RuleSetError([RuleProblem(str(directory), "is not a rule set directory")])
    problems: list[RuleProblem] = []
    documents: dict[str, dict[str, Any]] = {}
    for key, file_name in FILES.items():
        file = directory / file_name
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(RuleProblem(str(file), "is missing: a rule set has " + _file_list()))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(RuleProblem(str(file), f"cannot be read: {exc}"))
            continue
        try:
            documents[key] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            problems.append(RuleProblem(str(file), f"is not valid TOML: {exc}"))
    for extra in sorted(directory.glob("*.toml")):
        if extra.name not in FILES.values():
            problems.append(
                RuleProblem(str(extra), "is not a rule file; a rule set has " + _file_list())
            )
    if problems:
        raise RuleSetError(problems)
    return documents


def _file_list() -> str:
    return ", ".join(FILES.values())


def rule_set_from_documents(
    documents: Mapping[str, Mapping[str, Any]], source: Path | None = None
) -> RuleSet:
    """Validate parsed rule documents (keyed as ``FILES``) and build the rule set."""
    return _Builder(documents, source).build()


class _Builder:
    def __init__(self, documents: Mapping[str, Mapping[str, Any]], source: Path | None) -> None:
        self.documents = documents
        self.source = source
        self.problems: list[RuleProblem] = []

    def file(self, key: str) -> str:
        name = FILES[key]
        return str(self.source / name) if self.source is not None else name

    def problem(
        self, key: str, message: str, *, rule: str | None = None, item: str | None = None
    ) -> None:
        self.problems.append(RuleProblem(self.file(key), message, rule_id=rule, item=item))

    def id_lines(self, key: str, rule_id: str) -> list[str]:
        """Where ``id = "RULE_ID"`` is written in the file of ``key`` ("FILE line N"), when the
        rule set was read from a directory (TOML parsing keeps no line numbers)."""
        if self.source is None:
            return []
        try:
            text = (self.source / FILES[key]).read_text(encoding="utf-8")
        except OSError:
            return []
        written = re.compile(rf"""\s*id\s*=\s*["']{re.escape(rule_id)}["']\s*(#.*)?""")
        return [
            f"{FILES[key]} line {n}"
            for n, line in enumerate(text.splitlines(), 1)
            if written.fullmatch(line)
        ]

    def document(self, key: str) -> Mapping[str, Any]:
        doc = self.documents.get(key)
        if doc is None:
            self.problem(key, "is missing")
            return {}
        return doc

    def build(self) -> RuleSet:
        name, description = self.header()
        parameters = self.parameters()
        reasons = self.reasons()
        scope = Scope(
            CONDITION_TYPES,
            {p.name: p.condition_type for p in parameters.values()},
            NOT_IN_CONDITIONS,
            broken=[n for n in self.document("parameters") if n not in parameters],
        )
        seen_ids: dict[str, str] = {}
        tables = {
            table: self.table(table, scope, reasons, seen_ids)
            for table in (PWC, SOS, COLLECTABILITY)
        }
        if self.problems:
            raise RuleSetError(self.problems)
        return RuleSet(name, description, parameters, reasons, tables, self.source)

    # --- ruleset.toml --------------------------------------------------------------------

    def header(self) -> tuple[str, str]:
        doc = self.document("ruleset")
        for key in doc:
            if key not in ("format", "name", "description"):
                self.problem("ruleset", f"unknown key {key!r} (keys: format, name, description)")
        fmt = doc.get("format")
        if fmt != FORMAT_VERSION:
            self.problem("ruleset", f"format must be {FORMAT_VERSION}, not {fmt!r}")
        name = doc.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 128:
            self.problem("ruleset", "name must be text of 1 to 128 characters")
            name = ""
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.problem("ruleset", "description must be text")
            description = ""
        return name, description

    # --- parameters.toml -----------------------------------------------------------------

    def parameters(self) -> dict[str, Parameter]:
        result: dict[str, Parameter] = {}
        for name, spec in self.document("parameters").items():
            param = self.parameter(name, spec)
            if param is not None:
                result[name] = param
        for name, ptype in FEATURE_PARAMETERS.items():
            found = result.get(name)
            if name not in self.document("parameters"):
                self.problem(
                    "parameters",
                    f"is missing: features are computed with it (type {ptype.value})",
                    item=f"parameter {name}",
                )
            elif found is not None and found.type is not ptype:
                self.problem(
                    "parameters",
                    f"must be of type {ptype.value} (features are computed with it), "
                    f"not {found.type.value}",
                    item=f"parameter {name}",
                )
        return result

    def parameter(self, name: str, spec: Any) -> Parameter | None:
        item = f"parameter {name}"
        why = check_name(name)
        if why is None and (name in CONDITION_TYPES or name in NOT_IN_CONDITIONS):
            why = f"{name!r} is the name of a feature; choose another name"
        if why is not None:
            self.problem("parameters", why, item=item)
            return None
        if not isinstance(spec, Mapping):
            self.problem(
                "parameters",
                "must be a table: [name] with type, value and description",
                item=item,
            )
            return None
        unknown = [k for k in spec if k not in ("type", "value", "description")]
        missing = [k for k in ("type", "value", "description") if k not in spec]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append("unknown keys " + ", ".join(map(repr, unknown)))
            if missing:
                parts.append("missing " + ", ".join(missing))
            self.problem(
                "parameters",
                "; ".join(parts) + " (a parameter has type, value, description)",
                item=item,
            )
            return None
        description = spec["description"]
        if not isinstance(description, str) or not description.strip():
            self.problem("parameters", "description must be non-empty text", item=item)
            return None
        try:
            ptype = parse_type(spec["type"])
            value = from_toml(ptype, spec["value"])
        except ParameterValueError as exc:
            self.problem("parameters", str(exc), item=item)
            return None
        return Parameter(name, ptype, value, description.strip())

    # --- reasons.toml --------------------------------------------------------------------

    def reasons(self) -> dict[str, Reason]:
        result: dict[str, Reason] = {}
        for code, description in self.document("reasons").items():
            item = f"reason {code}"
            if not _REASON.fullmatch(code):
                self.problem(
                    "reasons",
                    "a reason code is upper case A-Z, 0-9 and _, at most 32 characters",
                    item=item,
                )
            elif not isinstance(description, str) or not description.strip():
                self.problem("reasons", 'write the code as CODE = "what it means"', item=item)
            else:
                result[code] = Reason(code, description.strip())
        return result

    # --- tables --------------------------------------------------------------------------

    def table(
        self, table: str, scope: Scope, reasons: Mapping[str, Reason], seen_ids: dict[str, str]
    ) -> RuleTable:
        key = TABLE_FILES[table]
        doc = self.document(key)
        expected = (PWC, SOS) if key == "eligibility" else (COLLECTABILITY,)
        if table == expected[0]:
            for other in doc:
                if other not in expected:
                    self.problem(
                        key,
                        f"unknown table [[{other}]] (this file has "
                        + ", ".join(f"[[{e}]]" for e in expected)
                        + ")",
                        item=f"table {other}",
                    )
        rows = doc.get(table)
        if rows is None:
            self.problem(key, f"is missing: write its rows as [[{table}]]", item=f"table {table}")
            return RuleTable(table, self.file(key), ())
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            self.problem(key, f"write each row as a [[{table}]] table", item=f"table {table}")
            return RuleTable(table, self.file(key), ())
        rules: list[Rule] = []
        for position, row in enumerate(rows, start=1):
            rule = self.row(table, key, position, row, scope, reasons, seen_ids)
            if rule is not None:
                rules.append(rule)
        self.catch_all(table, key, rows, rules)
        return RuleTable(table, self.file(key), tuple(rules))

    def row(
        self,
        table: str,
        key: str,
        position: int,
        row: Mapping[str, Any],
        scope: Scope,
        reasons: Mapping[str, Reason],
        seen_ids: dict[str, str],
    ) -> Rule | None:
        rule_id = row.get("id")
        label = rule_id if isinstance(rule_id, str) and rule_id else f"(row {position} of {table})"
        ok = True

        def bad(message: str) -> None:
            nonlocal ok
            ok = False
            self.problem(key, message, rule=label)

        unknown = [k for k in row if k not in _ROW_KEYS]
        if unknown:
            bad(f"unknown keys {', '.join(map(repr, unknown))} (a row has {', '.join(_ROW_KEYS)})")
        missing = [k for k in _ROW_KEYS if k not in row]
        if missing:
            bad(f"missing {', '.join(missing)} (a row has {', '.join(_ROW_KEYS)})")
            return None
        if not isinstance(rule_id, str) or not _RULE_ID.fullmatch(rule_id):
            bad("id must be 1 to 64 characters: letters, digits, '.', '_' or '-'")
        elif rule_id in seen_ids:
            lines = self.id_lines(TABLE_FILES[seen_ids[rule_id]], rule_id)
            if TABLE_FILES[seen_ids[rule_id]] != key:
                lines += self.id_lines(key, rule_id)
            at = f" ({', '.join(lines)})" if lines else ""
            bad(
                f"duplicate rule id{at} (also in table {seen_ids[rule_id]}): rule ids must be "
                "unique"
            )
        else:
            seen_ids[rule_id] = table
        description = row["description"]
        if not isinstance(description, str) or not description.strip():
            bad("description must be non-empty text")
        outcome = self.outcome(table, row["outcome"], bad)
        reason = row["reason"]
        if not isinstance(reason, str) or reason not in reasons:
            bad(
                f"unknown reason code {reason!r}; declare it in {FILES['reasons']} "
                f"(declared: {', '.join(reasons) or 'none'})"
            )
        when = row["when"]
        condition = None
        if not isinstance(when, str):
            bad(f"when must be a condition in quotes, not {when!r}")
        else:
            try:
                condition = compile_condition(when, scope)
            except UsesBrokenParameter:
                ok = False  # the parameter's own problem is reported; nothing more to say
            except ConditionError as exc:
                column = f" (column {exc.position + 1})" if exc.position is not None else ""
                bad(f"condition {when!r}: {exc.message}{column}")
        if not ok or condition is None or outcome is None:
            return None
        return Rule(
            id=str(rule_id),
            description=str(description).strip(),
            condition=condition,
            outcome=outcome,
            reason=str(reason),
            table=table,
            position=position,
        )

    def outcome(self, table: str, raw: Any, bad: Any) -> Outcome | None:
        try:
            outcome = Outcome(raw)
        except ValueError:
            bad(f"unknown outcome {raw!r}; outcomes: {', '.join(o.value for o in Outcome)}")
            return None
        if outcome not in ALLOWED_OUTCOMES[table]:
            bad(
                f"outcome {outcome.value} is not allowed in the {table} table (allowed: "
                + ", ".join(o.value for o in ALLOWED_OUTCOMES[table])
                + ")"
            )
            return None
        return outcome

    def catch_all(self, table: str, key: str, rows: list[Any], rules: list[Rule]) -> None:
        if not rows:
            self.problem(
                key, "has no rows; it needs at least a catch-all row", item=f"table {table}"
            )
            return
        for rule in rules:
            if rule.is_catch_all and rule.position != len(rows):
                self.problem(
                    key,
                    'is a catch-all (when = "TRUE") but not the last row: the rows after it '
                    "could never match",
                    rule=rule.id,
                )
        last = next((r for r in rules if r.position == len(rows)), None)
        if last is not None and not last.is_catch_all:
            self.problem(
                key,
                f'table {table} has no catch-all: its last row must have when = "TRUE", so '
                "every debt gets an outcome",
                rule=last.id,
            )
