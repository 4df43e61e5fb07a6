"""csa-closure.toml (or $CSA_CLOSURE_CONFIG): database URL, actor, letters configuration and
chunk size; environment variables and options override it; bad keys are refused by name."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from csa_closure.cli import cli
from csa_closure.cli.notify import _config
from csa_closure.cli.params import CliState
from csa_closure.config import load_config
from csa_closure.letters.config import bundled_config_text
from csa_closure.simulation.legacy import generate_legacy
from tests.conftest import AS_OF

ENV = (
    "CSA_CLOSURE_DB",
    "CSA_CLOSURE_ACTOR",
    "CSA_CLOSURE_CHUNK_SIZE",
    "CSA_CLOSURE_CONFIG",
    "CSA_CLOSURE_LETTERS_CONFIG",
    "CSA_CLOSURE_LOG_FILE",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _actors(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT actor FROM stage_runs ORDER BY run_id")]


def test_the_file_configures_and_environment_and_options_override(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = tmp_path / "from-file.db"
    (tmp_path / "csa-closure.toml").write_text(
        f'database_url = "sqlite:///{store}"\nactor = "file-actor"\nchunk_size = 100\n'
    )
    legacy = tmp_path / "legacy.db"
    generate_legacy(str(legacy), 300, 5, AS_OF)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert store.exists()  # the file's database, not the default one
    log_file = tmp_path / "log.jsonl"
    pulled = runner.invoke(
        cli, ["--as-of", "2019-04-01", "--log-file", str(log_file), "pull", "--source", str(legacy)]
    )
    assert pulled.exit_code == 0, pulled.output
    logging.shutdown()
    chunks = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert max(e.get("chunk", 0) for e in chunks) >= 3  # 300 cases, 100 a chunk (the file's)
    clean_env.setenv("CSA_CLOSURE_ACTOR", "env-actor")
    assert runner.invoke(cli, ["--as-of", "2019-04-01", "assess"]).exit_code == 0
    assert runner.invoke(cli, ["--actor", "opt", "--as-of", "2019-04-01", "assess"]).exit_code == 0
    assert _actors(store) == ["file-actor", "env-actor", "opt"]
    other = tmp_path / "other.db"
    clean_env.setenv("CSA_CLOSURE_DB", f"sqlite:///{other}")
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert other.exists()


def test_a_named_file_and_its_letters_configuration(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "ops"
    folder.mkdir()
    (folder / "letters.toml").write_text(bundled_config_text())
    named = folder / "settings.toml"
    named.write_text('letters_config = "letters.toml"\n')
    clean_env.setenv("CSA_CLOSURE_CONFIG", str(named))
    loaded = load_config(tmp_path)
    assert loaded.path == named.resolve()
    assert loaded.letters_config == str((folder / "letters.toml").resolve())
    state = CliState(
        db_url="sqlite://", as_of=AS_OF, actor="a", letters_config=loaded.letters_config
    )
    with click.Context(click.Command("x"), obj=state):
        assert _config(None).source == str((folder / "letters.toml").resolve())
        clean_env.setenv("CSA_CLOSURE_LETTERS_CONFIG", str(folder / "letters.toml"))
        assert _config(None).source == str(folder / "letters.toml")  # the environment wins


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('database = "x"\n', "unknown key(s) database"),
        ('chunk_size = "big"\n', "chunk_size must be a whole number"),
        ("chunk_size = 0\n", "chunk_size must be at least 1"),
        ("actor = \n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_naming_the_key(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "csa-closure.toml").write_text(text)
    result = CliRunner().invoke(cli, ["db", "status"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "csa-closure.toml" in result.output


def test_a_missing_named_file_is_refused(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("CSA_CLOSURE_CONFIG", str(tmp_path / "nope.toml"))
    result = CliRunner().invoke(cli, ["db", "status"])
    assert result.exit_code == 2 and "CSA_CLOSURE_CONFIG names" in result.output


def test_every_environment_variable_the_tool_reads_is_in_the_readme() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    names = set()
    for path in [*(root / "csa_closure").rglob("*.py"), *(root / "tests").rglob("*.py")]:
        names |= set(re.findall(r"\b(CSA_CLOSURE_[A-Z_]*[A-Z]|NOTIFY_API_KEY)\b", path.read_text()))
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "CSA_CLOSURE_DB" in names and "NOTIFY_API_KEY" in names
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
