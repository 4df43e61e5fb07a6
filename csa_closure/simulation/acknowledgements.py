"""Simulated CMS acknowledgement files for a transfer package, for tests and the demo.

The CMS reads the package (``debts.parquet`` and ``manifest.json``) and answers one row per
debt: mostly ``ACCEPTED``; ``rejected`` of them (chosen by the seed) ``REJECTED`` with one of
the CMS's reason codes. ``duplicates`` repeats rows and ``unknown_rows`` adds rows for a batch
the toolkit never exported, as a real CMS feed might. The simulation reads only the package,
as the CMS would: it never touches the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from csa_closure.errors import UsageError
from csa_closure.serialise import JsonFields
from csa_closure.simulation.seeded import SeededRandom
from csa_closure.stages.intake import write_owner_only
from csa_closure.stages.transfer import DEBTS_FILE, MANIFEST_FILE
from csa_closure.stages.transfer_ack import COLUMNS

REJECT_REASONS = ("NRP_NOT_TRACED", "ADDRESS_INCOMPLETE", "DUPLICATE_CMS_CASE", "NINO_MISMATCH")


def simulate_ack(
    package_dir: Path,
    *,
    seed: int,
    rejected: int = 0,
    duplicates: int = 0,
    unknown_rows: int = 0,
) -> pl.DataFrame:
    """The acknowledgement rows (the contract's columns, as text) for one package folder."""
    package_dir = Path(package_dir)
    manifest = json.loads((package_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    batch_id = str(manifest["batch_id"])
    debts = pl.read_parquet(package_dir / DEBTS_FILE, columns=["case_ref", "creditor"]).sort(
        "case_ref", "creditor"
    )
    n = debts.height
    rng = SeededRandom(seed, f"ack/{batch_id}")
    rejected = min(rejected, n)
    chosen = rng.order("rejected", n).head(rejected) if n else pl.Series([], dtype=pl.Int64)
    reason = (
        rng.pick("reason", n, [1] * len(REJECT_REASONS)) if n else pl.Series([], dtype=pl.Int64)
    )
    rows = (
        debts.with_row_index("i")
        .with_columns(reason.alias("reason_no"))
        .select(
            pl.lit(batch_id).alias("batch_id"),
            "case_ref",
            "creditor",
            pl.when(pl.col("i").cast(pl.Int64).is_in(chosen.implode()))
            .then(pl.lit("REJECTED"))
            .otherwise(pl.lit("ACCEPTED"))
            .alias("status"),
            pl.when(pl.col("i").cast(pl.Int64).is_in(chosen.implode()))
            .then(
                pl.col("reason_no").replace_strict(
                    list(range(len(REJECT_REASONS))), list(REJECT_REASONS), return_dtype=pl.String
                )
            )
            .otherwise(pl.lit(""))
            .alias("reason"),
        )
    )
    if duplicates and n:
        rows = pl.concat(
            [rows, rows.select(pl.all().gather(rng.below("duplicates", duplicates, n)))]
        )
    if unknown_rows and n:
        rows = pl.concat(
            [rows, rows.head(unknown_rows).with_columns(pl.lit(f"{batch_id}-X").alias("batch_id"))]
        )
    return rows.select(COLUMNS)


@dataclass
class AckFile(JsonFields):
    path: str
    batch_id: str
    rows: int
    accepted: int
    rejected: int


def write_ack_file(
    package_dir: Path,
    path: Path,
    *,
    seed: int,
    rejected: int = 0,
    duplicates: int = 0,
    unknown_rows: int = 0,
) -> AckFile:
    """Write the simulated acknowledgement of ``package_dir`` to ``path`` (owner-only)."""
    rows = simulate_ack(
        package_dir, seed=seed, rejected=rejected, duplicates=duplicates, unknown_rows=unknown_rows
    )
    write_owner_only(Path(path), rows.write_csv().encode("utf-8"))
    return AckFile(
        path=str(path),
        batch_id=Path(package_dir).name,
        rows=rows.height,
        accepted=rows.filter(pl.col("status") == "ACCEPTED").height,
        rejected=rows.filter(pl.col("status") == "REJECTED").height,
    )


def package_dirs(folder: Path) -> list[Path]:
    """The transfer packages at ``folder``: the folder itself if it is one (it has a
    manifest), else each of its sub-folders that is, in name order."""
    folder = Path(folder)
    if (folder / MANIFEST_FILE).is_file():
        return [folder]
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / MANIFEST_FILE).is_file())


def rejections_for(package_dir: Path, per_thousand: int) -> int:
    """How many of a package's rows the CMS rejects at ``per_thousand`` (rounded down)."""
    manifest = json.loads((Path(package_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
    return int(manifest["row_count"]) * per_thousand // 1000


def write_acks_file(
    folder: Path, path: Path, *, seed: int, rejected_per_thousand: int = 0
) -> list[AckFile]:
    """Write one acknowledgement file for every package at ``folder`` (see
    :func:`package_dirs`): each package's rows as :func:`write_ack_file` makes them, with
    ``rejected_per_thousand`` of its rows rejected. Refuses a folder with no package."""
    packages = package_dirs(folder)
    if not packages:
        raise UsageError(f"{folder} holds no transfer package (no {MANIFEST_FILE} in it or below)")
    frames = [
        simulate_ack(p, seed=seed, rejected=rejections_for(p, rejected_per_thousand))
        for p in packages
    ]
    write_owner_only(Path(path), pl.concat(frames).write_csv().encode("utf-8"))
    return [
        AckFile(
            path=str(path),
            batch_id=p.name,
            rows=f.height,
            accepted=f.filter(pl.col("status") == "ACCEPTED").height,
            rejected=f.filter(pl.col("status") == "REJECTED").height,
        )
        for p, f in zip(packages, frames, strict=True)
    ]
