"""The benchmarks still run: ``benchmarks/run_all.py --quick`` completes and reports every
measure. No timing is asserted here (see docs/performance.md for the figures)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN_ALL = Path(__file__).resolve().parent.parent / "benchmarks" / "run_all.py"
# 8 runs the real Claude CLI (scripts/test.sh installs it), against the local API stand-in.
MEASURES = ["1", "2", "3", "4a", "4b", "4c", "4d", "4e", "5", "6a", "7a", "7b"]
MEASURES += ["8a", "8b", "8c", "8e", "8f", "9a", "9b"]
MEASURES += ["10a", "10b", "10c", "10d", "10e", "10f"]
MEASURES += ["11a", "11b", "11c", "11d"]


# Two halves run side by side (most of a measure's time is waiting on processes it started),
# which halves the test's time; each half has about the same work.
GROUPS = ["4,8,11", "1,2,3,5,6,7,9,10"]


def test_the_groups_cover_every_measure() -> None:
    listed = set(re.findall(r'^\s+"(\d+)": bench_', RUN_ALL.read_text(), re.M))
    grouped = [m for group in GROUPS for m in group.split(",")]
    assert sorted(grouped) == sorted(listed), "a measure of run_all.py is in no group"


@pytest.mark.timeout(400)
def test_run_all_quick_reports_every_measure(tmp_path: Path) -> None:
    runs = []
    for number, group in enumerate(GROUPS):
        results = tmp_path / f"results-{number}.json"
        data = tmp_path / f"data-{number}"
        env = {**os.environ, "JA_BENCH_DIR": str(data)}
        env.pop("JUPYTER_ASSISTANT_DIR", None)
        command = [sys.executable, str(RUN_ALL), "--quick", "--only", group, "--json", str(results)]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        runs.append((process, results, data))
    reported: set[str] = set()
    tables = ""
    try:
        for process, results, data in runs:
            stdout, stderr = process.communicate(timeout=390)
            assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
            reported |= {row["key"] for row in json.loads(results.read_text())["results"]}
            tables += stdout
            assert not list(data.iterdir()), "a benchmark left its data behind"
    finally:
        for process, _, _ in runs:
            if process.poll() is None:
                process.kill()
    assert set(MEASURES) <= reported
    for key in MEASURES:
        assert f"| {key} |" in tables, f"measure {key} missing from the table"
