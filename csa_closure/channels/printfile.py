"""Print-vendor files: Notify's bulk-upload CSV, one per letter template per batch.

Layout, under the output directory::

    batch-<id>/                       0700
        batch-<id>-<letter>.csv       0600  one per template
        batch-<id>-<letter>-<n>.csv   0600  ... or numbered from 1, when a template has more
                                            than MAX_PRINT_FILE_ROWS letters
        manifest.json                 0600  written last: the batch is complete when it is there

Each CSV has the columns ``address line 1`` ... ``address line 6``, ``postcode``, then the
template's placeholders in the configured order; one row per letter, in the order given. A file
holds at most :data:`MAX_PRINT_FILE_ROWS` letters (Notify's limit for one upload); a template's
letters beyond it go on in the next numbered file, each in the manifest. Every value is written
so a spreadsheet shows it as text (:mod:`csa_closure.csvsafe`).
The manifest names the batch, and for each file its template, letter kinds, row count,
SHA-256 and the letters' references in row order (references carry no personal data; the
CSV keeps Notify's format, so the references are not in it).

Files hold personal data: every file and directory is created owner-only from the start
(``os.open``/``os.mkdir`` with the mode, never a ``chmod`` afterwards), written to a temporary
name and linked into place, so a crash never leaves a partial file under a final name.
Writing the same batch again writes nothing: existing identical files are kept; a file that
differs is refused (:class:`PrintBatchConflict`).

:func:`write_print_batch` takes composed letters (:class:`OutgoingLetter`); the send writes
with :func:`write_print_frames`, which takes the letters as frames
(:func:`~csa_closure.letters.compose.compose_frame`) and streams each file chunk by chunk,
hashing as it writes, so a batch of a million letters needs the memory of one chunk. Both
write the same bytes for the same letters (``tests/channels/test_channels_printfile_frames.py``).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl

from csa_closure.csvsafe import safe_row, safe_text
from csa_closure.errors import CsaClosureError
from csa_closure.letters.compose import OutgoingLetter
from csa_closure.letters.config import LettersConfig, TemplateConfig
from csa_closure.letters.fields import ADDRESS_KEYS

ADDRESS_COLUMNS = (*(f"address line {n}" for n in range(1, 7)), "postcode")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
MAX_PRINT_FILE_ROWS = 100_000  # Notify: at most 100,000 rows in one uploaded file
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

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        config: LettersConfig,
        *,
        max_rows: int = MAX_PRINT_FILE_ROWS,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.config = config
        self.max_rows = max_rows

    def write_batch(self, batch_id: int | str, letters: Iterable[OutgoingLetter]) -> PrintBatch:
        return write_print_batch(
            self.out_dir, batch_id, letters, self.config, max_rows=self.max_rows
        )

    def write_frames(self, batch_id: int | str, frames: Iterable[pl.DataFrame]) -> PrintBatch:
        return write_print_frames(
            self.out_dir, batch_id, frames, self.config, max_rows=self.max_rows
        )


def write_print_batch(
    out_dir: str | os.PathLike[str],
    batch_id: int | str,
    letters: Iterable[OutgoingLetter],
    config: LettersConfig,
    *,
    max_rows: int = MAX_PRINT_FILE_ROWS,
) -> PrintBatch:
    """Write (or find already written) the files of batch ``batch_id``."""
    batch = _batch_name(batch_id)
    rendered = _render(batch, letters, config, max_rows)
    directory = _batch_directory(Path(out_dir), batch)
    written = False
    for file, data in rendered:
        written |= _write_once(directory / file.name, data)
    files = tuple(file for file, _ in rendered)
    manifest = _manifest(batch, files)
    written |= _write_once(directory / MANIFEST_NAME, manifest)
    return PrintBatch(batch, directory, files, hashlib.sha256(manifest).hexdigest(), written)


def _batch_name(batch_id: int | str) -> str:
    batch = str(batch_id)
    if not _BATCH_ID.fullmatch(batch):
        raise ValueError("a batch id is up to 40 letters, digits, - and _")
    return batch


# --- rendering -----------------------------------------------------------------------------


@dataclass
class _Group:
    template: TemplateConfig
    kinds: set[str]
    row_kinds: list[str]
    rows: list[list[str]]
    references: list[str]


def _file_name(batch: str, kinds: Iterable[str], part: int | None) -> str:
    """``batch-7-representation.PWC.csv``; ``...-2.csv`` for the second file of a template."""
    number = "" if part is None else f"-{part}"
    return f"batch-{batch}-{'+'.join(sorted(kinds))}{number}.csv"


def _render(
    batch: str, letters: Iterable[OutgoingLetter], config: LettersConfig, max_rows: int
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
        group = groups.setdefault(template.template_id, _Group(template, set(), [], [], []))
        group.kinds.add(letter.kind.key)
        group.row_kinds.append(letter.kind.key)
        group.rows.append(_row(letter, template))
        group.references.append(letter.reference)
    rendered = []
    for group in sorted(groups.values(), key=lambda g: sorted(g.kinds)):
        starts = range(0, len(group.rows), max_rows)
        for number, start in enumerate(starts, start=1):
            rows = group.rows[start : start + max_rows]
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow([*ADDRESS_COLUMNS, *group.template.placeholder_names])
            writer.writerows(safe_row(row) for row in rows)
            data = buffer.getvalue().encode("utf-8")
            file = PrintFile(
                name=_file_name(batch, group.kinds, number if len(starts) > 1 else None),
                template_id=group.template.template_id,
                kinds=tuple(sorted(set(group.row_kinds[start : start + max_rows]))),
                row_count=len(rows),
                sha256=hashlib.sha256(data).hexdigest(),
                references=tuple(group.references[start : start + max_rows]),
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


# --- streaming frames -------------------------------------------------------------------------


def write_print_frames(
    out_dir: str | os.PathLike[str],
    batch_id: int | str,
    frames: Iterable[pl.DataFrame],
    config: LettersConfig,
    *,
    max_rows: int = MAX_PRINT_FILE_ROWS,
) -> PrintBatch:
    """Write (or find already written) the files of batch ``batch_id`` from letters composed
    as frames: ``reference``, ``kind`` (``representation.PWC``), ``address_line_1`` ..
    ``address_line_7`` and a column per letter field (:func:`compose_frame`'s columns), in the
    order they are to be printed. The same files as :func:`write_print_batch`, byte for byte.

    Each file is written to a temporary name as the frames come, hashed as it is written; only
    when every frame is written are the files linked into place (an identical file already
    there is kept, a different one refused) and the manifest written last. A failure part-way
    leaves no file under a final name (and no batch directory, if this call made it).
    """
    batch = _batch_name(batch_id)
    out = Path(out_dir)
    templates = {kind.key: template for kind, template in config.templates.items()}
    streams: dict[str, _Stream] = {}
    directory: Path | None = None
    made_directory = finished = False
    try:
        for frame in frames:
            if frame.height == 0:
                continue
            if directory is None:
                made_directory = not (out / f"batch-{batch}").exists()
                directory = _batch_directory(out, batch)
                _remove_stale_temporaries(directory, batch)
            for template, part in _by_template(frame, templates):
                stream = streams.get(template.template_id)
                if stream is None:
                    stream = streams[template.template_id] = _Stream(
                        template, directory, batch, max_rows
                    )
                stream.write(part)
        _refuse_duplicates(streams.values())
        if directory is None:
            directory = _batch_directory(out, batch)
        written = False
        files = []
        for stream in sorted(streams.values(), key=lambda s: sorted(s.kinds)):
            for temporary, file in stream.finish():
                written |= _link_once(temporary, directory / file.name, file.sha256)
                files.append(file)
        manifest = _manifest(batch, tuple(files))
        written |= _write_once(directory / MANIFEST_NAME, manifest)
        finished = True
        return PrintBatch(
            batch, directory, tuple(files), hashlib.sha256(manifest).hexdigest(), written
        )
    finally:
        for stream in streams.values():
            stream.discard()
        if not finished and made_directory and directory is not None:
            with suppress(OSError):
                os.rmdir(directory)  # only if nothing is in it


@dataclass
class _Part:
    """One file of a template's letters, being written to its temporary name."""

    temporary: Path
    handle: IO[bytes]
    digest: Any
    kinds: set[str] = field(default_factory=set)
    references: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, temporary: Path) -> _Part:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return cls(temporary, os.fdopen(fd, "wb"), hashlib.sha256())

    def write(self, part: pl.DataFrame, template: TemplateConfig) -> None:
        rows = _csv_rows(part, template)
        buffer = io.BytesIO()
        rows.write_csv(buffer, include_header=not self.references, line_terminator="\r\n")
        data = buffer.getvalue()
        self.digest.update(data)
        self.handle.write(data)
        self.kinds.update(part.get_column("kind").unique().to_list())
        self.references.extend(part.get_column("reference").to_list())

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


@dataclass
class _Stream:
    """One template's files, being written to their temporary names, each at most
    ``max_rows`` letters."""

    template: TemplateConfig
    directory: Path
    batch: str
    max_rows: int
    parts: list[_Part] = field(default_factory=list)

    @property
    def kinds(self) -> set[str]:
        return {kind for part in self.parts for kind in part.kinds}

    @property
    def references(self) -> list[str]:
        return [r for part in self.parts for r in part.references]

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame`` (letters of this template, with ``kind`` and ``reference``),
        starting a new file whenever the current one is full."""
        while frame.height:
            if not self.parts or len(self.parts[-1].references) >= self.max_rows:
                name = f".batch-{self.batch}-{self.template.template_id}-{len(self.parts) + 1}"
                self.parts.append(_Part.open(self.directory / f"{name}.{os.getpid()}.tmp"))
            current = self.parts[-1]
            room = self.max_rows - len(current.references)
            current.write(frame.head(room), self.template)
            frame = frame.slice(room)

    def finish(self) -> list[tuple[Path, PrintFile]]:
        kinds = self.kinds
        files = []
        for number, part in enumerate(self.parts, start=1):
            part.close()
            file = PrintFile(
                name=_file_name(self.batch, kinds, number if len(self.parts) > 1 else None),
                template_id=self.template.template_id,
                kinds=tuple(sorted(part.kinds)),
                row_count=len(part.references),
                sha256=part.digest.hexdigest(),
                references=tuple(part.references),
            )
            files.append((part.temporary, file))
        return files

    def discard(self) -> None:
        for part in self.parts:
            part.handle.close()
            with suppress(FileNotFoundError):
                os.unlink(part.temporary)


def _by_template(
    frame: pl.DataFrame, templates: dict[str, TemplateConfig]
) -> Iterable[tuple[TemplateConfig, pl.DataFrame]]:
    """The letters of ``frame`` by template (in the frame's order within each)."""
    kinds = frame.get_column("kind")
    unknown = frame.filter(~kinds.is_in(list(templates)) | kinds.is_null())
    if unknown.height:
        raise ValueError(f"letter {unknown['reference'][0]}: no template for its kind")
    present = set(kinds.unique().to_list())
    by_id: dict[str, tuple[TemplateConfig, list[str]]] = {}
    for key, template in templates.items():
        if key in present:
            by_id.setdefault(template.template_id, (template, []))[1].append(key)
    for template, keys in by_id.values():
        yield template, frame.filter(pl.col("kind").is_in(keys))


def _csv_rows(part: pl.DataFrame, template: TemplateConfig) -> pl.DataFrame:
    """The CSV's columns for ``part``, as :func:`_row` makes them (an empty value as null, so
    it is written as nothing, as Python's csv writes an empty string)."""
    # the address lines that are there, and the number each is printed as
    lines = [pl.col(k).cast(pl.String) for k in ADDRESS_KEYS]
    present = [(line != "").fill_null(False) for line in lines]
    at = [f"at {i}" for i in range(len(lines))]
    work = (
        part.lazy()
        .select(
            pl.col("reference"),
            *(line.alias(k) for line, k in zip(lines, ADDRESS_KEYS, strict=True)),
            *(pl.sum_horizontal(present[: i + 1]).cast(pl.Int32).alias(at[i]) for i in range(7)),
            *(
                pl.col(f.value).cast(pl.String).alias(f"value {n}")
                for n, (_, f) in enumerate(template.placeholders)
            ),
        )
        .collect()
    )
    count = work.get_column(at[-1])
    bad = work.filter((count < 3) | (count > 7))
    if bad.height:
        raise ValueError(f"letter {bad['reference'][0]}: the address must have 3 to 7 lines")
    for n, (name, _) in enumerate(template.placeholders):
        missing = work.filter(pl.col(f"value {n}").is_null())
        if missing.height:
            raise ValueError(f"letter {missing['reference'][0]}: no value for placeholder {name}")

    def printed_as(number: pl.Expr) -> pl.Expr:
        """The line printed as ``number`` (1-based)."""
        return pl.coalesce(
            pl.when(present[i] & (pl.col(at[i]) == number)).then(pl.col(ADDRESS_KEYS[i]))
            for i in range(len(lines))
        )

    count_expr = pl.col(at[-1])
    street = [
        pl.when(count_expr > n).then(printed_as(pl.lit(n))).alias(column)
        for n, column in enumerate(ADDRESS_COLUMNS[:-1], start=1)
    ]
    postcode = printed_as(count_expr).alias(ADDRESS_COLUMNS[-1])
    values = [
        pl.when(pl.col(f"value {n}") != "").then(pl.col(f"value {n}")).alias(name)
        for n, (name, _) in enumerate(template.placeholders)
    ]
    columns = [*street, postcode, *values]
    return work.lazy().select(safe_text(c).alias(c.meta.output_name()) for c in columns).collect()


def _refuse_duplicates(streams: Iterable[_Stream]) -> None:
    references = pl.Series([r for s in streams for r in s.references], dtype=pl.String)
    twice = references.filter(references.is_duplicated())
    if twice.len():
        raise ValueError(f"letter {twice[0]} is in the batch twice")


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
    return _matches_existing(path, hashlib.sha256(data).hexdigest())


def _matches_existing(path: Path, sha256: str) -> bool:
    """True if ``path`` holds the bytes with this SHA-256; False if there is no such file;
    :class:`PrintBatchConflict` if it holds others."""
    try:
        existing = file_sha256(path)
    except FileNotFoundError:
        return False
    if existing != sha256:
        raise PrintBatchConflict(
            f"{path.name} in {path.parent} differs from this batch's letters: nothing was"
            " overwritten; check which batch the directory holds"
        )
    return True


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read a block at a time."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _link_once(temporary: Path, path: Path, sha256: str) -> bool:
    """Link the finished ``temporary`` (whose bytes have ``sha256``) to ``path`` unless an
    identical file is there already; True if linked."""
    if _matches_existing(path, sha256):
        return False
    try:
        os.link(temporary, path)  # never replaces an existing file
    except FileExistsError:
        if not _matches_existing(path, sha256):
            raise
        return False
    return True


def _remove_stale_temporaries(directory: Path, batch: str) -> None:
    """Temporary files a killed writer of this batch left (holding personal data)."""
    for path in directory.iterdir():
        name = path.name
        if not (
            name.startswith((f".batch-{batch}-", f".{MANIFEST_NAME}.")) and name.endswith(".tmp")
        ):
            continue
        pid = name.removesuffix(".tmp").rpartition(".")[2]
        if pid.isdigit() and (int(pid) == os.getpid() or not _running(int(pid))):
            with suppress(FileNotFoundError):
                os.unlink(path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
