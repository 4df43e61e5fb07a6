"""Print-vendor files: Notify's bulk-upload CSV, one per letter template per batch.

Layout, under the output directory::

    batch-<id>/                       0700
        batch-<id>-<letter>.csv       0600  one per template
        manifest.json                 0600  written last: the batch is complete when it is there

Each CSV has the columns ``address line 1`` ... ``address line 6``, ``postcode``, then the
template's placeholders in the configured order; one row per letter, in the order given.
The manifest names the batch, and for each file its template, letter kinds, row count,
SHA-256 and the letters' references in row order (references carry no personal data; the
CSV keeps Notify's format, so the references are not in it).

Files hold personal data: every file and directory is created owner-only from the start
(``os.open``/``os.mkdir`` with the mode, never a ``chmod`` afterwards), written to a temporary
name and linked into place, so a crash never leaves a partial file under a final name.
Writing the same batch again writes nothing: existing identical files are kept; a file that
differs is refused (:class:`PrintBatchConflict`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from csa_closure.errors import CsaClosureError
from csa_closure.letters.compose import OutgoingLetter
from csa_closure.letters.config import LettersConfig, TemplateConfig
from csa_closure.letters.fields import ADDRESS_KEYS

ADDRESS_COLUMNS = (*(f"address line {n}" for n in range(1, 7)), "postcode")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class PrintBatchConflict(CsaClosureError):
    """The batch's directory already holds different files: nothing was overwritten."""


@dataclass(frozen=True)
class PrintFile:
    name: str
    template_id: str
    kinds: tuple[str, ...]  # letter kinds in the file, e.g. ("write_off_notice.NRP",)
    row_count: int
    sha256: str
    references: tuple[str, ...]  # in row order


@dataclass(frozen=True)
class PrintBatch:
    batch_id: str
    directory: Path
    files: tuple[PrintFile, ...]
    manifest_sha256: str
    written: bool  # False when every file was already there, identical

    @property
    def row_count(self) -> int:
        return sum(f.row_count for f in self.files)

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(r for f in self.files for r in f.references)


class PrintFileChannel:
    """Writes letter batches as print-vendor files under ``out_dir``."""

    name = "print-file"

    def __init__(self, out_dir: str | os.PathLike[str], config: LettersConfig) -> None:
        self.out_dir = Path(out_dir)
        self.config = config

    def write_batch(self, batch_id: int | str, letters: Iterable[OutgoingLetter]) -> PrintBatch:
        return write_print_batch(self.out_dir, batch_id, letters, self.config)


def write_print_batch(
    out_dir: str | os.PathLike[str],
    batch_id: int | str,
    letters: Iterable[OutgoingLetter],
    config: LettersConfig,
) -> PrintBatch:
    """Write (or find already written) the files of batch ``batch_id``."""
    batch = str(batch_id)
    if not _BATCH_ID.fullmatch(batch):
        raise ValueError("a batch id is up to 40 letters, digits, - and _")
    rendered = _render(batch, letters, config)
    directory = _batch_directory(Path(out_dir), batch)
    written = False
    for file, data in rendered:
        written |= _write_once(directory / file.name, data)
    files = tuple(file for file, _ in rendered)
    manifest = _manifest(batch, files)
    written |= _write_once(directory / MANIFEST_NAME, manifest)
    return PrintBatch(batch, directory, files, hashlib.sha256(manifest).hexdigest(), written)


# --- rendering -----------------------------------------------------------------------------


@dataclass
class _Group:
    template: TemplateConfig
    kinds: set[str]
    rows: list[list[str]]
    references: list[str]


def _render(
    batch: str, letters: Iterable[OutgoingLetter], config: LettersConfig
) -> list[tuple[PrintFile, bytes]]:
    groups: dict[str, _Group] = {}
    seen: set[str] = set()
    for letter in letters:
        if letter.reference in seen:
            raise ValueError(f"letter {letter.reference} is in the batch twice")
        seen.add(letter.reference)
        template = config.template(letter.kind)
        if template.template_id != letter.template_id:
            raise ValueError(f"letter {letter.reference}: template differs from the configuration")
        group = groups.setdefault(template.template_id, _Group(template, set(), [], []))
        group.kinds.add(letter.kind.key)
        group.rows.append(_row(letter, template))
        group.references.append(letter.reference)
    rendered = []
    for group in sorted(groups.values(), key=lambda g: sorted(g.kinds)):
        kinds = tuple(sorted(group.kinds))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([*ADDRESS_COLUMNS, *group.template.placeholder_names])
        writer.writerows(group.rows)
        data = buffer.getvalue().encode("utf-8")
        file = PrintFile(
            name=f"batch-{batch}-{'+'.join(kinds)}.csv",
            template_id=group.template.template_id,
            kinds=kinds,
            row_count=len(group.rows),
            sha256=hashlib.sha256(data).hexdigest(),
            references=tuple(group.references),
        )
        rendered.append((file, data))
    return rendered


def _row(letter: OutgoingLetter, template: TemplateConfig) -> list[str]:
    p = letter.personalisation
    lines = [str(p[k]) for k in ADDRESS_KEYS if p.get(k)]
    if not 3 <= len(lines) <= 7:
        raise ValueError(f"letter {letter.reference}: the address must have 3 to 7 lines")
    street = lines[:-1] + [""] * (6 - len(lines[:-1]))
    missing = [name for name in template.placeholder_names if name not in p]
    if missing:
        raise ValueError(f"letter {letter.reference}: no value for placeholder {missing[0]}")
    return [*street, lines[-1], *(str(p[name]) for name in template.placeholder_names)]


def _manifest(batch: str, files: tuple[PrintFile, ...]) -> bytes:
    document = {
        "manifest_version": MANIFEST_VERSION,
        "batch_id": batch,
        "row_count": sum(f.row_count for f in files),
        "files": [
            {
                "file": f.name,
                "template_id": f.template_id,
                "letters": list(f.kinds),
                "row_count": f.row_count,
                "sha256": f.sha256,
                "references": list(f.references),
            }
            for f in files
        ],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


# --- owner-only, write-once files ------------------------------------------------------------


def _batch_directory(out_dir: Path, batch: str) -> Path:
    for missing in reversed([out_dir, *out_dir.parents]):
        if not missing.exists():
            with suppress(FileExistsError):
                os.mkdir(missing, 0o700)  # every directory we make is owner-only
    directory = out_dir / f"batch-{batch}"
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            raise PrintBatchConflict(f"{directory} exists and is not a directory") from None
        if info.st_mode & 0o077:
            raise PrintBatchConflict(
                f"{directory} exists and others can read it: move it away, then write the batch"
            ) from None
    return directory


def _write_once(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` owner-only unless it is there already; True if written."""
    if _same_as_existing(path, data):
        return False
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # never replaces an existing file
        except FileExistsError:
            if not _same_as_existing(path, data):
                raise
            return False
    finally:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
    return True


def _same_as_existing(path: Path, data: bytes) -> bool:
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        return False
    if hashlib.sha256(existing).digest() != hashlib.sha256(data).digest():
        raise PrintBatchConflict(
            f"{path.name} in {path.parent} differs from this batch's letters: nothing was"
            " overwritten; check which batch the directory holds"
        )
    return True
