"""Malformed rule files (hypothesis): refused with the file and the problem before anything is
written, or, if they still make a valid rule set, used with every debt decided once and the
books balanced. Never a crash.

Hypothesis takes the default rule set and breaks it as an editor might: a value replaced by
any TOML value (numbers out of range, floats, infinities, strings, arrays, tables, dates,
booleans), a condition replaced by random tokens (features, parameters, operators, functions,
brackets), lines deleted, doubled, swapped or cut short, a file emptied, deleted, filled with
junk or with bytes that are not UTF-8, a stray file added. Each broken set is loaded and
assessed against a freshly pulled book. (Hand-written cases for each validation rule are in
test_rules_validation.py; valid random rule sets in test_policy_properties.py.)

Rule loading happens before the store is touched, so this runs on SQLite only.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from csa_closure.context import Context, Settings
from csa_closure.errors import CsaClosureError, InputError
from csa_closure.policy.errors import RuleSetError
from csa_closure.policy.loader import load_rule_set
from csa_closure.reconcile import reconcile
from csa_closure.resources import default_rules_dir
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.stages.assess import assess
from csa_closure.stages.pull import pull
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine

pytestmark = pytest.mark.slow

AS_OF = date(2019, 3, 31)
DEFAULT = default_rules_dir()
RULE_FILES = sorted(p.name for p in DEFAULT.glob("*.toml"))
TOKENS = [
    "balance_pence",
    "paying",
    "liability_ongoing",
    "case_age_years",
    "threshold_pence",
    "nrp_deceased",
    "TRUE",
    "FALSE",
    "NULL",
    "AND",
    "OR",
    "NOT",
    "=",
    "<",
    ">=",
    "<>",
    "+",
    "*",
    "/",
    "(",
    ")",
    "0",
    "-1",
    "6500",
    "'x'",
    "coalesce",
    "abs",
    "__import__",
    "os.system",
    "balance_pence(",
    "IS",
    "IN",
    ",",
]


@pytest.fixture(scope="module")
def pulled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a generated book pulled and nothing decided: the template."""
    root = tmp_path_factory.mktemp("rules")
    legacy = root / "legacy.db"
    generate_legacy(str(legacy), cases=200, seed=3, ensure_coverage=True)
    store = root / "store.db"
    engine = make_engine(f"sqlite:///{store}")
    migrate.upgrade(engine)
    pull(Context(engine=engine, as_of=AS_OF, actor="seed"), str(legacy))
    engine.dispose()
    return store


def _fresh(template: Path, root: Path) -> Iterator[Context]:
    path = root / f"{uuid.uuid4().hex}.db"
    with closing(sqlite3.connect(template)) as src, closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
    engine = make_engine(f"sqlite:///{path}")
    try:
        yield Context(engine=engine, as_of=AS_OF, actor="policy", settings=Settings(chunk_size=40))
    finally:
        engine.dispose()


# --- breaking a rule set ------------------------------------------------------------------------

scalar = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.sampled_from(["0", "-1", "1e400", "inf", "-inf", "nan", "0.5", "1.0", "true", "false"]),
    st.text(max_size=20).map(json.dumps),
    st.sampled_from(['"0.60"', '"1.5"', '"-0.1"', '"60"', '"pence"', '"rate"', '""']),
    st.dates().map(date.isoformat),
)
toml_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: "[" + ", ".join(v) + "]"),
        st.dictionaries(st.sampled_from(["a", "type", "value"]), inner, max_size=2).map(
            lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=4,
)
condition = st.lists(st.sampled_from(TOKENS), min_size=0, max_size=7).map(
    lambda tokens: json.dumps(" ".join(tokens))
)


@st.composite
def broken_rule_sets(draw: st.DrawFn) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = {n: (DEFAULT / n).read_bytes() for n in RULE_FILES}
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(RULE_FILES))
        content = files[name]
        lines = (content or b"").decode("utf-8", errors="replace").split("\n")
        how = draw(
            st.sampled_from(
                ["value"] * 4
                + ["number"] * 4
                + ["when"] * 3
                + ["delete", "duplicate", "swap", "truncate", "junk", "gone", "empty", "bytes"]
            )
        )
        event(f"break: {how}")
        assigned = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
        if how == "value" and assigned:
            i = draw(st.sampled_from(assigned))
            lines[i] = lines[i].split("=", 1)[0] + "= " + draw(toml_value)
        elif how == "number":
            # a parameter's value, still a number: out of its range, or just different
            values = [i for i in assigned if lines[i].startswith("value")]
            if values:
                lines[draw(st.sampled_from(values))] = "value = " + draw(
                    st.one_of(
                        st.integers(-5, 10**6).map(str),
                        st.sampled_from(['"0.00"', '"1.00"', '"0.999"', "true", "-1"]),
                    )
                )
        elif how == "when":
            whens = [i for i in assigned if lines[i].startswith("when")] or assigned
            if whens:
                lines[draw(st.sampled_from(whens))] = "when = " + draw(condition)
        elif how == "delete" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
        elif how == "duplicate" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(i, lines[i])
        elif how == "swap" and len(lines) > 1:
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif how == "truncate":
            cut = "\n".join(lines)
            lines = [cut[: draw(st.integers(0, len(cut)))]]
        elif how == "junk":
            lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=30)))
        if how == "gone":
            files[name] = None
        elif how == "empty":
            files[name] = b""
        elif how == "bytes":
            files[name] = (content or b"") + b"\n# \xff\xfe\n"
        else:
            files[name] = "\n".join(lines).encode("utf-8", errors="surrogatepass")
    if draw(st.sampled_from([False] * 9 + [True])):
        files["notes.toml"] = b"x = 1\n"
    return files


def _write(files: dict[str, bytes | None], directory: Path) -> Path:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir()
    for name, content in files.items():
        if content is not None:
            (directory / name).write_bytes(content)
    return directory


def _store_counts(ctx: Context) -> tuple[int, ...]:
    with ctx.engine.connect() as conn:
        counts = [
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0
            for table in ("stage_runs", "events", "rule_sets")
        ]
        decided = conn.execute(text("SELECT count(*) FROM debts WHERE state <> 'pulled'"))
        return (*counts, decided.scalar() or 0)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(files=broken_rule_sets())
def test_a_broken_rule_set_is_refused_before_anything_is_written_or_decides_a_balanced_book(
    pulled: Path, tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes | None]
) -> None:
    root = tmp_path_factory.mktemp("broken")
    rules = _write(files, root / "rules")
    try:
        load_rule_set(rules)
    except RuleSetError as refused:
        event("refused")
        assert refused.problems
        for problem in refused.problems:
            assert str(rules) in problem.file and problem.problem  # the file, and what
        for ctx in _fresh(pulled, root):
            before = _store_counts(ctx)
            with pytest.raises(RuleSetError):
                assess(ctx, rules_dir=rules)
            assert _store_counts(ctx) == before  # nothing written, not even a run
        return
    except Exception as crash:  # anything else is a defect: the message must guide staff
        raise AssertionError(f"loading crashed: {type(crash).__name__}: {crash}") from crash

    event("still a valid rule set")
    for ctx in _fresh(pulled, root):
        before = _store_counts(ctx)
        try:
            result = assess(ctx, rules_dir=rules)
        except InputError as refused:
            # a rule set that loads but cannot decide this book: refused, nothing decided
            event("loaded, refused at assess")
            assert str(refused)
            assert _store_counts(ctx)[1:] == before[1:]
            return
        except CsaClosureError as refused:
            raise AssertionError(f"assess refused with a non-input error: {refused}") from None
        with ctx.engine.connect() as conn:
            debts, decided, distinct = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM debts), count(*), count(DISTINCT debt_id) "
                    "FROM events WHERE event_type = 'debt.decided'"
                )
            ).one()
        assert result.decided == decided == distinct == debts  # each debt decided once
        assert reconcile(ctx).balanced
