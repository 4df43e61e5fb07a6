"""The README opens with the newcomer's two commands, and CI runs the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _opening_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```", 2)[1]
    lines = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    return [line for line in lines if not line.startswith("#")]


def test_readme_opens_with_two_commands_before_anything_else() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    before_block = text.split("```", 1)[0]
    assert "##" not in before_block  # no section comes before the two commands
    commands = _opening_commands()
    assert len(commands) == 2
    install_and_run, install_and_test = commands
    # a wheel install (not editable), then the main job
    assert re.search(r"pip install (-q )?\. ", install_and_run), install_and_run
    assert "csa-closure demo" in install_and_run
    assert "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _opening_commands()[1] in ci.splitlines()
