"""Files the package needs at run time: the default rules and the legacy SQL.

In a source checkout they live at the top of the repository (``rules/``, ``sql/``), where
people edit them; the wheel carries copies under ``csa_closure/_bundled/``. Both layouts
resolve here, so the code never depends on being run from a checkout.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The directory of bundled resources called ``name`` (``rules`` or ``sql``)."""
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"the bundled {name!r} directory is missing from this installation of csa-closure"
    )


def sql_text(file_name: str) -> str:
    return (resource_dir("sql") / file_name).read_text(encoding="utf-8")


def default_rules_dir() -> Path:
    return resource_dir("rules")


def resource_file(relative: str) -> Path:
    """A bundled file by its path from the top of the repository (``runbooks/03-letters.md``,
    ``README.md``): the wheel's copy under ``_bundled/``, else the checkout's."""
    for candidate in (_PACKAGE / "_bundled" / relative, _PACKAGE.parent / relative):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"the bundled file {relative!r} is missing from this installation of csa-closure"
    )
