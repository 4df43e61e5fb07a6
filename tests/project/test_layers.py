"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and break when they should.

`lint-imports` reads every module's imports (function-level ones too) and follows chains, so
a production module that reaches the simulation through another module breaks a contract as
surely as one that imports it directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(
    cwd: Path, *contracts: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *(f"--contract={c}" for c in contracts)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layer_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_of_the_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package and its pyproject.toml, copied where a test may break them."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(
        ROOT / "csa_closure",
        root / "csa_closure",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # the stage reaching the simulation only inside a function still counts
        (
            "stages/pull.py",
            "def _simulated():\n    from csa_closure.simulation import seeded\n",
            "simulation",
        ),
        ("channels/status.py", "import csa_closure.simulation.fake_notify\n", "simulation"),
        ("reports/runs.py", "from csa_closure.cli import output\n", "cli-on-top"),
        ("store/leases.py", "import csa_closure.stages.checks\n", "store"),
        ("domain/notice.py", "import csa_closure.store.schema\n", "domain"),
        ("errors.py", "import csa_closure.logs\n", "leaves"),
        ("stages/decommission.py", "import csa_closure.reports.render\n", "stages"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    copy_of_the_package: Path, module: str, line: str, contract: str
) -> None:
    path = copy_of_the_package / "csa_closure" / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "\n\n" + line, encoding="utf-8")
    try:
        result = lint_imports(copy_of_the_package, contract, pythonpath=copy_of_the_package)
    finally:
        path.write_text(original, encoding="utf-8")
    # without the line the same contract is kept (the test above), so the copy was what was read
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and "0 kept, 1 broken" in result.stdout, result.stdout
