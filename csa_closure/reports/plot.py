"""``report progress --plot FILE``: the burndown as a PNG or SVG for managers' packs.

matplotlib is an optional extra (``pip install 'csa-closure[plot]'``); without it the command
says so and how to install it. The figure shows the same series as the terminal burndown
(:func:`csa_closure.reports.progress.burndown`): debts and pounds still open per as-of day,
and, with a target date, the straight line to zero by then.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from csa_closure.errors import UsageError
from csa_closure.reports.progress import ProgressReport, burndown, headline

PLOT_SUFFIXES = (".png", ".svg")
INSTALL_HINT = "pip install 'csa-closure[plot]'"


def write_burndown_plot(report: ProgressReport, path: Path, target: date | None = None) -> Path:
    """Draw the burndown to ``path`` (PNG or SVG by its suffix); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot writes .png or .svg files, not {path.name!r}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from None
    points = burndown(report)
    days = [p.as_of for p in points]
    h = headline(report)
    figure, (debts_axis, pounds_axis) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    debts_axis.step(days, [p.open_debts for p in points], where="post", label="debts open")
    pounds_axis.step(days, [p.open_pence / 100 for p in points], where="post", label="pounds open")
    if target is not None and target > report.as_of:
        last = points[-1]
        debts_axis.plot([report.as_of, target], [last.open_debts, 0], "--", label="pace needed")
        pounds_axis.plot(
            [report.as_of, target], [last.open_pence / 100, 0], "--", label="pace needed"
        )
    debts_axis.set_ylabel("debts open")
    pounds_axis.set_ylabel("£ open")
    for axis in (debts_axis, pounds_axis):
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right")
        axis.set_ylim(bottom=0)
    closed = (h.closed_debts * 1000) // h.loaded_debts if h.loaded_debts else 0
    figure.suptitle(
        f"Closure burndown at {report.as_of.isoformat()}: {closed // 10}.{closed % 10}% of "
        f"debts closed, expected finish {h.expected_finish.isoformat()}"
        + (f", target {target.isoformat()}" if target else "")
    )
    figure.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
