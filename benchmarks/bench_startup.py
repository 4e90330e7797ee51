"""Measure 1: server start-up with jupyterlab + jupyter_assistant vs jupyterlab alone.

Time from spawning ``python -m jupyter_server`` until ``GET /api/status`` answers. Both servers
load exactly jupyterlab (the other extensions installed here are switched off in both, so the
baseline is as small as it can be and the overhead as visible as it can be); the only
difference is ``jpserver_extensions.jupyter_assistant``. Runs alternate ABBA; target: the median
start-up is at most 5% above the baseline's.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from _common import Result, Server, interleave, print_results, workspace

OTHERS_OFF = {"jupyter_lsp": False, "jupyter_server_terminals": False, "notebook_shim": False}
LIMIT = 1.05
# What a server with jupyterlab imports anyway, before any of our modules.
SERVER_MODULES = [
    "jupyter_server.serverapp",
    "jupyter_server.extension.application",
    "jupyter_server.auth.decorator",
    "jupyterlab.labapp",
]


def start_once(home: Path, with_assistant: bool) -> float:
    config = {
        "ServerApp": {
            "jpserver_extensions": {
                "jupyterlab": True,
                "jupyter_assistant": with_assistant,
                **OTHERS_OFF,
            }
        }
    }
    server = Server(home, config=config)
    try:
        return server.start()
    finally:
        server.stop()


def import_cost_ms() -> float:
    """What importing the extension adds to a process that has jupyter_server loaded: the
    self-times (``-X importtime``) of every module imported after the server's own."""
    code = (
        f"import {', '.join(SERVER_MODULES)}; "
        "import jupyter_assistant.app, jupyter_assistant.handlers"
    )
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stderr.splitlines()
    # -X importtime writes one line per module as it finishes; ours come after the server's.
    marker = next(i for i, line in enumerate(out) if line.endswith(f"| {SERVER_MODULES[-1]}"))
    return sum(int(line.split("|")[0].split(":")[1]) for line in out[marker + 1 :]) / 1000


def run(quick: bool = False) -> list[Result]:
    pairs = 1 if quick else 16
    with workspace("startup") as home:
        ours, lab = home / "with", home / "without"
        if not quick:
            # Warm the page cache and write the runtime/data folders once, untimed.
            start_once(ours, True)
            start_once(lab, False)
        with_times, lab_times = interleave(
            pairs, lambda: start_once(ours, True), lambda: start_once(lab, False)
        )
    figure = statistics.median(with_times)
    baseline = statistics.median(lab_times)
    overhead = figure / baseline - 1
    pair_ratios = [a / b for a, b in zip(with_times, lab_times, strict=True)]
    imports = statistics.median(import_cost_ms() for _ in range(1 if quick else 3))
    return [
        Result(
            "1",
            "server start-up until /api/status answers (jupyterlab + assistant vs jupyterlab)",
            figure,
            "s",
            baseline,
            compare=f"{overhead * 100:+.1f}% ({(figure - baseline) * 1000:+.0f} ms)",
            target="overhead <= 5%",
            met=figure <= baseline * LIMIT,
            notes=[
                f"{pairs} interleaved pairs; median of per-pair ratios "
                f"{statistics.median(pair_ratios):.3f}",
                f"with: {min(with_times):.2f}..{max(with_times):.2f} s; "
                f"without: {min(lab_times):.2f}..{max(lab_times):.2f} s",
                f"importing the extension adds {imports:.1f} ms to a process that has "
                "jupyter_server loaded (-X importtime; the engine is imported on first use)",
            ],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
