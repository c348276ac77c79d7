"""Shared plumbing for benchmarks: every bench prints a table and writes bench/results/<name>.json.

`bench/report.py` turns all result files into BENCHMARKS.md, so each figure there carries its command, date and
machine note. A row: {"metric", "ours", "baseline", "unit", "target", "note"}; `ratio` is computed here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine_note() -> str:
    return f"{platform.machine()}, {os.cpu_count()} vCPU, Python {platform.python_version()}, {platform.system()}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[index])


def _ratio(ours: object, baseline: object) -> float | None:
    if isinstance(ours, (int, float)) and isinstance(baseline, (int, float)) and ours and baseline:
        return round(float(ours) / float(baseline), 3)
    return None


def write_result(
    name: str, title: str, command: str, rows: list[dict], runs: int, extra: dict | None = None, how: str | None = None
) -> Path:
    """Print the table and write bench/results/<name>.json; `how` says how the figures were taken when they are not
    medians of `runs` runs."""
    for row in rows:
        row.setdefault("baseline", None)
        row.setdefault("target", None)
        row.setdefault("note", "")
        row["ratio"] = _ratio(row.get("ours"), row.get("baseline"))
    document = {
        "name": name,
        "title": title,
        "command": command,
        "date": dt.date.today().isoformat(),
        "machine": machine_note(),
        "runs": runs,
        "how": how or how_measured(runs),
        "rows": rows,
        **(extra or {}),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print_table(document)
    return path


def how_measured(runs: int) -> str:
    return f"{runs} run(s), median"


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(document: dict) -> None:
    rows = document["rows"]
    header = ["metric", "ours", "baseline", "ratio", "unit", "target"]
    table = [header] + [[_fmt(r.get(h)) if h != "metric" else r["metric"] for h in header] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    how = document.get("how") or how_measured(document["runs"])
    print(f"\n{document['title']}  ({how}; {document['machine']})")
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(line)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"reproduce: {document['command']}\n")
