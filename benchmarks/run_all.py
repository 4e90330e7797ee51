"""Run every benchmark of docs/performance.md and print one table.

python benchmarks/run_all.py            # the full run (~3 minutes on a quiet 2-core VM)
python benchmarks/run_all.py --quick    # a short smoke run: every measure, few repetitions
python benchmarks/run_all.py --only 2,5 --json results.json
python benchmarks/run_all.py --only 1 --peers   # measure 1 next to the peers' (installs them)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import bench_append
import bench_cancel
import bench_checkpoints
import bench_concurrent
import bench_first_event
import bench_list
import bench_peers
import bench_read_notebook
import bench_startup
import bench_stream
import bench_tools_turn
import bench_warm
from _common import Result, load_average, machine, print_results

MEASURES: dict[str, Callable[[bool], list[Result]]] = {
    "1": bench_startup.run,
    "2": bench_stream.run,
    "3": bench_first_event.run,
    "4": bench_cancel.run,
    "5": bench_append.run,
    "6": bench_list.run,
    "7": bench_concurrent.run,
    "8": bench_tools_turn.run,
    "9": bench_read_notebook.run,
    "10": bench_checkpoints.run,
    "11": bench_warm.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the jupyter_assistant benchmarks.")
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run")
    parser.add_argument("--only", default="", help="comma-separated measure numbers, e.g. 2,5")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also measure 1 for jupyter-ai and notebook-intelligence (bench_peers.py: installs "
        "them in venvs of their own on first use)",
    )
    args = parser.parse_args()
    chosen = [m.strip() for m in args.only.split(",") if m.strip()] or list(MEASURES)
    unknown = set(chosen) - set(MEASURES)
    if unknown:
        parser.error(f"unknown measure(s) {sorted(unknown)}; known: {', '.join(MEASURES)}")
    info = machine()
    info["load average at start (1/5/15 min)"] = load_average()
    results: list[Result] = []
    failed = []
    started = time.monotonic()
    runs = [(key, MEASURES[key]) for key in chosen]
    if args.peers:
        runs.append(("1p", bench_peers.run))
    for key, measure in runs:
        print(f"measure {key} ...", file=sys.stderr, flush=True)
        try:
            results += measure(args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(key)
    info["load average at end (1/5/15 min)"] = load_average()
    info["duration"] = f"{time.monotonic() - started:.0f} s" + (" (--quick)" if args.quick else "")
    print()
    for name, value in info.items():
        print(f"- {name}: {value}")
    print()
    print_results(results)
    if failed:
        print(f"\nFAILED to run measure(s): {', '.join(failed)}")
    if args.json:
        payload = {"machine": info, "results": [r.as_json() for r in results], "failed": failed}
        args.json.write_text(json.dumps(payload, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
