"""The benchmarks still run: ``benchmarks/run_all.py --quick`` completes and reports every
measure. No timing is asserted here (see docs/performance.md for the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN_ALL = Path(__file__).resolve().parent.parent / "benchmarks" / "run_all.py"
# 8 runs the real Claude CLI (scripts/test.sh installs it), against the local API stand-in.
MEASURES = ["1", "2", "3", "4a", "4b", "4c", "4d", "4e", "5", "6a", "7a", "7b"]
MEASURES += ["8a", "8b", "8c", "9a", "9b"]
MEASURES += ["10a", "10b", "10c", "10d", "10e", "10f"]
MEASURES += ["11a", "11b", "11c"]


@pytest.mark.timeout(400)
def test_run_all_quick_reports_every_measure(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {**os.environ, "JA_BENCH_DIR": str(tmp_path / "data")}
    env.pop("JUPYTER_ASSISTANT_DIR", None)
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick", "--json", str(results)],
        capture_output=True,
        text=True,
        env=env,
        timeout=390,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reported = {row["key"] for row in json.loads(results.read_text())["results"]}
    assert set(MEASURES) <= reported
    for key in MEASURES:
        assert f"| {key} |" in done.stdout, f"measure {key} missing from the table"
    assert not list((tmp_path / "data").iterdir()), "a benchmark left its data behind"
