"""Print-vendor files: Notify's bulk-upload CSV per template, a manifest, owner-only, write-once."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
from datetime import date
from pathlib import Path

import pytest

from csa_closure.channels import PrintBatchConflict, PrintFileChannel, write_print_batch
from csa_closure.letters import (
    LetterFacts,
    OutgoingLetter,
    RecipientParty,
    load_letters_config,
    new_reference,
    prepare_letter,
)

CONFIG = load_letters_config(env={})


def party(n: int, lines: int = 2) -> RecipientParty:
    street = {f"address_line_{i}": f"{n} Line {i}" for i in range(1, lines + 1)}
    return RecipientParty(
        f"CS2:{n}", given_names=f"Parent{n}", family_name="Example", postcode="M1 1AE", **street
    )  # type: ignore[arg-type]


def letters() -> list[OutgoingLetter]:
    facts = LetterFacts("C000000001", 250_000, date(2019, 4, 1), decision_date=date(2019, 3, 1))
    made = [
        prepare_letter(new_reference(), "write_off_notice", "PWC", party(1), facts, CONFIG),
        prepare_letter(
            new_reference(), "write_off_notice", "NRP", party(2, lines=5), facts, CONFIG
        ),
        prepare_letter(
            new_reference(), "write_off_notice", "PWC", party(3, lines=1), facts, CONFIG
        ),
        prepare_letter(new_reference(), "representation", "PWC", party(4), facts, CONFIG),
    ]
    return made


@pytest.fixture(autouse=True)
def permissive_umask() -> object:
    """Owner-only must hold by construction, not because of the caller's umask."""
    old = os.umask(0o000)
    yield
    os.umask(old)


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_one_csv_per_template_in_notify_bulk_upload_format(tmp_path: Path) -> None:
    batch_letters = letters()
    batch = write_print_batch(tmp_path, 42, batch_letters, CONFIG)
    assert batch.written and batch.row_count == 4
    names = sorted(f.name for f in batch.files)
    assert names == [
        "batch-42-representation.PWC.csv",
        "batch-42-write_off_notice.NRP.csv",
        "batch-42-write_off_notice.PWC.csv",
    ]
    rows = read_csv(batch.directory / "batch-42-write_off_notice.PWC.csv")
    assert rows[0] == [
        "address line 1",
        "address line 2",
        "address line 3",
        "address line 4",
        "address line 5",
        "address line 6",
        "postcode",
        "name",
        "case_reference",
        "amount_written_off",
        "decision_date",
    ]
    assert rows[1] == [
        "Parent1 Example", "1 Line 1", "1 Line 2", "", "", "", "M1 1AE",
        "Parent1 Example", "C000000001", "£2,500.00", "1 March 2019",
    ]  # fmt: skip
    assert rows[2][:7] == ["Parent3 Example", "3 Line 1", "", "", "", "", "M1 1AE"]
    longest = read_csv(batch.directory / "batch-42-write_off_notice.NRP.csv")[1]
    assert longest[:7] == [
        "Parent2 Example", "2 Line 1", "2 Line 2", "2 Line 3", "2 Line 4", "2 Line 5", "M1 1AE",
    ]  # fmt: skip
    raw = (batch.directory / "batch-42-write_off_notice.PWC.csv").read_bytes()
    assert raw.count(b"\r\n") == 3 and "£".encode() in raw


def test_the_manifest_names_the_batch_templates_counts_checksums_and_references(
    tmp_path: Path,
) -> None:
    batch_letters = letters()
    batch = write_print_batch(tmp_path, 42, batch_letters, CONFIG)
    manifest_bytes = (batch.directory / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest_bytes).hexdigest() == batch.manifest_sha256
    manifest = json.loads(manifest_bytes)
    assert manifest["batch_id"] == "42" and manifest["row_count"] == 4
    for entry in manifest["files"]:
        data = (batch.directory / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["row_count"] == len(read_csv(batch.directory / entry["file"])) - 1
        kind = entry["letters"][0]
        assert entry["template_id"] == next(
            t.template_id for k, t in CONFIG.templates.items() if k.key == kind
        )
    pwc = next(e for e in manifest["files"] if e["letters"] == ["write_off_notice.PWC"])
    assert pwc["references"] == [batch_letters[0].reference, batch_letters[2].reference]
    assert "Parent" not in manifest_bytes.decode()  # references and ids only


def test_files_and_directory_are_owner_only_from_the_start(tmp_path: Path) -> None:
    batch = write_print_batch(tmp_path / "out" / "letters", 7, letters(), CONFIG)
    assert stat.S_IMODE(batch.directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "out" / "letters").stat().st_mode) == 0o700
    for path in batch.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert not [p for p in batch.directory.iterdir() if p.name.endswith(".tmp")]


def test_writing_the_same_batch_again_writes_nothing(tmp_path: Path) -> None:
    batch_letters = letters()
    first = write_print_batch(tmp_path, 7, batch_letters, CONFIG)
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in first.directory.iterdir()}
    again = PrintFileChannel(tmp_path, CONFIG).write_batch(7, batch_letters)
    assert not again.written
    assert again.manifest_sha256 == first.manifest_sha256
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in first.directory.iterdir()}
    assert after == before


def test_a_crash_before_the_manifest_is_finished_on_the_rerun(tmp_path: Path) -> None:
    batch_letters = letters()
    first = write_print_batch(tmp_path, 7, batch_letters, CONFIG)
    (first.directory / "manifest.json").unlink()
    (first.directory / first.files[0].name).unlink()
    again = write_print_batch(tmp_path, 7, batch_letters, CONFIG)
    assert again.written and again.manifest_sha256 == first.manifest_sha256


def test_a_different_batch_in_the_same_place_is_refused(tmp_path: Path) -> None:
    write_print_batch(tmp_path, 7, letters(), CONFIG)
    with pytest.raises(PrintBatchConflict, match="differs"):
        write_print_batch(tmp_path, 7, letters(), CONFIG)  # new references: other content


def test_a_directory_others_can_read_is_refused(tmp_path: Path) -> None:
    os.mkdir(tmp_path / "batch-9", 0o755)
    with pytest.raises(PrintBatchConflict, match="others can read"):
        write_print_batch(tmp_path, 9, letters(), CONFIG)


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    batch_letters = letters()
    with pytest.raises(ValueError, match="twice"):
        write_print_batch(tmp_path, 1, [*batch_letters, batch_letters[0]], CONFIG)
    with pytest.raises(ValueError, match="batch id"):
        write_print_batch(tmp_path, "../x", batch_letters, CONFIG)
    short = OutgoingLetter(
        new_reference(),
        batch_letters[0].kind,
        batch_letters[0].template_id,
        {"address_line_1": "x", "address_line_2": "M1 1AE"},
    )
    with pytest.raises(ValueError, match="3 to 7 lines"):
        write_print_batch(tmp_path, 1, [short], CONFIG)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_batch_writes_just_a_manifest(tmp_path: Path) -> None:
    batch = write_print_batch(tmp_path, 3, [], CONFIG)
    assert batch.files == () and batch.row_count == 0
    assert json.loads((batch.directory / "manifest.json").read_text())["files"] == []


HOSTILE = "-2+3 HYPERLINK(evil)"  # a spreadsheet would run this: Notify accepts it as a name


def test_a_hostile_name_is_read_back_as_text_not_a_formula(tmp_path: Path) -> None:
    facts = LetterFacts("C000000001", 250_000, date(2019, 4, 1), decision_date=date(2019, 3, 1))
    hostile = RecipientParty(
        "CS2:9",
        given_names=HOSTILE,
        family_name=None,
        address_line_1="+44 Formula Road",
        postcode="M1 1AE",
        address_line_2="Testtown",
    )
    letter = prepare_letter(new_reference(), "write_off_notice", "PWC", hostile, facts, CONFIG)
    batch = write_print_batch(tmp_path, 5, [letter], CONFIG)
    (row,) = read_csv(batch.directory / batch.files[0].name)[1:]
    assert row[0] == "'" + HOSTILE and row[1] == "'+44 Formula Road"
    assert row[7] == "'" + HOSTILE  # the name placeholder too
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row)
    assert row[6] == "M1 1AE" and row[9] == "£2,500.00"  # ordinary values are untouched


def test_a_template_over_the_row_limit_is_split_into_numbered_files(tmp_path: Path) -> None:
    facts = LetterFacts("C000000001", 250_000, date(2019, 4, 1), decision_date=date(2019, 3, 1))
    made = [
        prepare_letter(new_reference(), "write_off_notice", "PWC", party(n), facts, CONFIG)
        for n in range(7)
    ]
    made.append(prepare_letter(new_reference(), "representation", "PWC", party(8), facts, CONFIG))
    batch = PrintFileChannel(tmp_path, CONFIG, max_rows=3).write_batch(6, made)
    assert [(f.name, f.row_count) for f in batch.files] == [
        ("batch-6-representation.PWC.csv", 1),
        ("batch-6-write_off_notice.PWC-1.csv", 3),
        ("batch-6-write_off_notice.PWC-2.csv", 3),
        ("batch-6-write_off_notice.PWC-3.csv", 1),
    ]
    assert batch.references[1:] == tuple(letter.reference for letter in made[:7])
    manifest = json.loads((batch.directory / "manifest.json").read_text())
    assert [f["file"] for f in manifest["files"]] == [f.name for f in batch.files]
    assert manifest["row_count"] == 8
    for file in batch.files:
        rows = read_csv(batch.directory / file.name)
        assert rows[0][0] == "address line 1" and len(rows) - 1 == file.row_count
        assert hashlib.sha256((batch.directory / file.name).read_bytes()).hexdigest() == file.sha256
