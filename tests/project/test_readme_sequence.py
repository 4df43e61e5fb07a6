"""The README's by-hand sequence, run exactly as written from a wheel install, ends with the
decommission gate passing."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- by-hand sequence: tests/project/test_readme_sequence.py runs this block -->"


def readme_sequence() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split(MARKER, 1)[1]
    opening, block, _ = after.split("```", 2)
    assert not opening.strip()
    assert block.startswith("sh\n")
    return block.removeprefix("sh\n")


def wheel_venv(tmp_path: Path) -> Path:
    """A virtual environment with csa-closure installed from a freshly built wheel (its
    dependencies are taken from this interpreter's site-packages, not downloaded)."""
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
    )
    (wheel,) = dist.glob("csa_closure-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # the dependencies: this environment's packages, after the wheel's own (a path added by a
    # .pth file does not run that directory's .pth files, so an editable checkout stays out)
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            *[str(wheel)],
        ],
        check=True,
    )
    return env_dir


def test_the_readme_sequence_parses() -> None:
    script = readme_sequence()
    assert script.startswith("export CSA_CLOSURE_DB=")
    assert "sample responses" in script and "sample acks" in script
    assert "sample decisions" in script and "legacy-corrected.db" in script
    assert script.rstrip().endswith("decommission check")


@pytest.mark.slow
def test_the_readme_by_hand_sequence_ends_with_the_gate_passing(tmp_path: Path) -> None:
    run_sequence(tmp_path, readme_sequence())


@pytest.mark.slow
@pytest.mark.postgres
def test_the_readme_sequence_on_postgresql(tmp_path: Path, pg_schema_url: str) -> None:
    """The same commands with the store on PostgreSQL: only the export line differs."""
    script = readme_sequence()
    first, rest = script.split("\n", 1)
    assert first.startswith("export CSA_CLOSURE_DB=")
    run_sequence(tmp_path, f"export CSA_CLOSURE_DB='{pg_schema_url}'\n{rest}")


def run_sequence(tmp_path: Path, script: str) -> None:
    env_dir = wheel_venv(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSA_CLOSURE_")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    located = subprocess.run(
        [
            "bash",
            "-c",
            "command -v csa-closure && python -c 'import csa_closure; print(csa_closure.__file__)'",
        ],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(env_dir) in located and str(ROOT / "csa_closure") not in located, located
    # the documentation comes with the wheel
    shown = subprocess.run(
        ["csa-closure", "docs", "letters"], cwd=work, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (ROOT / "runbooks" / "03-letters.md").read_text(encoding="utf-8")
    ran = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-4000:]
    assert "every gate passes" in ran.stdout
