"""Measure 10: what a turn's checkpoint (undo, ``jupyter_assistant.checkpoints``) costs.

The folder (``build_folder``): 2,000 files, about 500 MB: 1,999 small and medium ones (text
sources, CSVs, JSON, binary blobs and images of mixed sizes, about 100 MB, in nested folders,
one of them a 1 MB CSV and one the session's notebook) and one 400 MB data file, over the
default ``ScanRules.max_file_bytes`` (50 MiB): it is left out of the checkpoint (reported as
"too large": its size and mtime are recorded, its content is never read, only stat'ed).

Measured on ``TurnCheckpoints`` directly, with the default ``ScanRules``, the folder and the
store in ``$JA_BENCH_DIR`` (the same disk as a real store):

- 10a: the first checkpoint of the folder (``before_turn`` with no earlier manifest: every file
  read, hashed and copied into the store). The folder was just written, so it is read from the
  page cache.
- 10b: ``before_turn`` once the folder was checkpointed before, nothing changed (the common
  case: one ``stat`` per file). Target: under 100 ms.
- 10c: the same with 5 small files changed since the previous checkpoint.
- 10d: ``after_turn`` (the turn changed 5 small files).
- 10e: a 20-turn session on a new store, each turn changing 5 small files and appending to the
  1 MB CSV: the size of ``<store>/checkpoints`` (blocks on disk, as ``du``) afterwards, split
  into the first copy of the folder's files, the turns' changed contents with their manifests
  (blobs too), and the turns' records.
- 10f: through a real server, ``POST messages`` until the first ``text`` event (measure 3's
  turn with the fake Claude CLI) with the session's notebook in that folder,
  ``turn_checkpoints`` on vs off, interleaved.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _common import (
    Result,
    Server,
    interleave,
    percentile,
    print_results,
    spread_ms,
    workspace,
)
from bench_first_event import through_server

TARGET_MS = 100.0
SESSION = "bench-session"
NOTEBOOK = "analysis.ipynb"
CSV = "data/sales.csv"
BIG = "data/raw/capture.bin"
MiB = 2**20
# An empty notebook with one cell: the session's notebook, inside the folder.
NOTEBOOK_JSON = (
    '{"cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": null, '
    '"outputs": [], "source": "import pandas as pd"}], "metadata": {}, "nbformat": 4, '
    '"nbformat_minor": 5}'
)


# -- the folder --------------------------------------------------------------------------------


def _text(size: int, seed: int) -> bytes:
    line = f"value_{seed} = compute({seed}, scale=0.5)  # a line of source text\n".encode()
    return (line * (size // len(line) + 1))[:size]


def build_folder(root: Path, files: int, small_bytes: int, big_bytes: int) -> dict[str, int]:
    """``files`` files: ``files - 1`` of mixed sizes totalling about ``small_bytes``, and one of
    ``big_bytes`` (``BIG``). Returns what was written (counts and bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / NOTEBOOK).write_text(NOTEBOOK_JSON)
    (root / "data").mkdir(exist_ok=True)
    header = b"date,region,amount,units\n"
    row = b"2026-12-03,north,1234.50,17\n"
    (root / CSV).write_bytes(header + row * (MiB // len(row)))
    written = 2 + 0  # the notebook and the CSV
    total = (root / NOTEBOOK).stat().st_size + (root / CSV).stat().st_size
    rest = files - 1 - written
    # Sizes: 70% small text (1-16 KB), 25% medium binary (16-200 KB), 5% larger binary: the
    # larger ones take what remains of small_bytes.
    sizes: list[tuple[int, bool]] = []
    for i in range(rest):
        kind = i % 20
        if kind < 14:
            sizes.append((1024 + (i * 977) % (15 * 1024), True))
        elif kind < 19:
            sizes.append((16 * 1024 + (i * 7919) % (184 * 1024), False))
        else:
            sizes.append((0, False))
    fixed = sum(size for size, _ in sizes)
    larger = [i for i, (size, _) in enumerate(sizes) if size == 0]
    share = max(small_bytes - total - fixed, 0) // max(len(larger), 1)
    for i in larger:
        sizes[i] = (share, False)
    folders = ["src", "src/pkg", "src/pkg/sub", "notes", "data/interim", "data/images", "out"]
    block = os.urandom(4 * MiB)
    for i, (size, is_text) in enumerate(sizes):
        folder = root / folders[i % len(folders)] / f"part{i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        if is_text:
            name, content = f"module_{i}.py", _text(size, i)
        else:  # random bytes: no two alike, none compressible
            name, content = f"blob_{i}.bin", os.urandom(size)
        (folder / name).write_bytes(content)
        total += size
        written += 1
    big = root / BIG
    big.parent.mkdir(parents=True, exist_ok=True)
    with big.open("wb") as file:  # real blocks (a repeated random block), not a sparse file
        left = big_bytes
        while left > 0:
            file.write(block[: min(left, len(block))])
            left -= len(block)
    return {"files": written + 1, "small_bytes": total, "big_bytes": big_bytes}


def small_files(root: Path) -> list[Path]:
    return sorted((root / "src").rglob("module_*.py"))


def change_files(files: list[Path], turn: int, count: int = 5) -> None:
    """Change ``count`` small files (a line appended: the size changes too, so the change is
    seen even within one tick of the file system's clock)."""
    for k in range(count):
        path = files[(turn * count + k) % len(files)]
        with path.open("ab") as file:
            file.write(f"# changed by turn {turn}\n".encode())


def append_csv(root: Path, turn: int) -> None:
    with (root / CSV).open("ab") as file:
        file.write(f"2026-12-{turn % 28 + 1:02d},south,99.{turn:02d},3\n".encode() * 200)


def disk_usage(path: Path) -> int:
    """Bytes of the blocks allocated under ``path``, as ``du`` counts them."""
    total = 0
    for folder, _, names in os.walk(path):
        total += os.lstat(folder).st_blocks * 512
        for name in names:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def profile_top(action: Callable[[], object], lines: int = 8) -> list[str]:
    """Where one call's time goes: the top functions by own time (cProfile)."""
    profiler = cProfile.Profile()
    profiler.enable()
    action()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime")
    rows = []
    for (filename, line, name), (_, calls, own, _, _) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: -item[1][2],
    )[:lines]:
        where = f"{Path(filename).name}:{line}({name})" if line else name
        rows.append(f"{own * 1000:.1f} ms own, {calls} calls: {where}")
    return rows


# -- 10a-10d: the engine --------------------------------------------------------------------


def engine_figures(home: Path, root: Path, runs: int, written: dict[str, int]) -> list[Result]:
    from jupyter_assistant.checkpoints import TurnCheckpoints

    checkpoints = TurnCheckpoints(home / "store")
    folder = str(root)
    first = timed(lambda: checkpoints.before_turn(SESSION, "turn-0", folder, NOTEBOOK))
    record = checkpoints._manifest(checkpoints._read(SESSION, "turn-0")["before"])
    too_large = sorted(p for p, why in record.not_covered.items() if why == "too large")
    covered = len(record.files) - len(too_large)
    checkpoints.after_turn(SESSION, "turn-0")
    files = small_files(root)
    warm: list[float] = []
    changed: list[float] = []
    after: list[float] = []
    for i in range(runs):
        warm.append(timed(checkpoints.before_turn, SESSION, f"w-{i}", folder, NOTEBOOK))
        checkpoints.after_turn(SESSION, f"w-{i}")
        change_files(files, i)
        changed.append(timed(checkpoints.before_turn, SESSION, f"c-{i}", folder, NOTEBOOK))
        change_files(files, runs + i)
        after.append(timed(checkpoints.after_turn, SESSION, f"c-{i}"))
    # Where a warm checkpoint's time goes: the scan alone, the manifest as JSON, the record.
    scan_only = [timed(lambda: checkpoints._scan(folder)) for _ in range(max(3, runs // 2))]
    manifest = checkpoints._scan(folder)
    encode = [timed(manifest.to_json) for _ in range(max(3, runs // 2))]
    record_file = checkpoints._file(SESSION, "w-0")
    profile = profile_top(lambda: checkpoints.before_turn(SESSION, "p-0", folder, NOTEBOOK))
    warm_ms = statistics.median(warm) * 1000
    p95 = percentile(warm, 95) * 1000
    folder_note = (
        f"the folder: {written['files']:,} files, "
        f"{(written['small_bytes'] + written['big_bytes']) / MiB:.0f} MiB: "
        f"{written['files'] - 1:,} files of {written['small_bytes'] / MiB:.0f} MiB, and "
        f"{BIG} of {written['big_bytes'] / MiB:.0f} MiB"
    )
    return [
        Result(
            "10a",
            "checkpoint before a turn, first time (every file read, hashed, copied)",
            first * 1000,
            "ms",
            target="reported",
            notes=[
                folder_note,
                f"covered {covered:,} files; left out as too large (over ScanRules."
                f"max_file_bytes, 50 MiB; stat'ed, not read): {', '.join(too_large) or 'none'}",
                "the folder was just written: read from the page cache",
            ],
        ),
        Result(
            "10b",
            "checkpoint before a turn, folder checkpointed before, nothing changed (median)",
            warm_ms,
            "ms",
            compare=f"p95 {p95:.1f} ms",
            target=f"< {TARGET_MS:g} ms",
            met=warm_ms < TARGET_MS and p95 < TARGET_MS,
            notes=[
                f"before_turn: {spread_ms(warm)}; p95 {p95:.1f} ms",
                f"of which the scan (one stat per file, manifest): {spread_ms(scan_only)}",
                f"the manifest as JSON (to_json; done only when the folder changed: an "
                f"unchanged folder's turns share one manifest blob): {spread_ms(encode)}, "
                f"{len(json.dumps(manifest.to_json())) / 1000:.0f} kB; a turn's record: "
                f"{record_file.stat().st_size} bytes",
                "cProfile of one warm before_turn, top functions by own time:",
                *[f"  {row}" for row in profile],
            ],
        ),
        Result(
            "10c",
            "checkpoint before a turn, 5 small files changed since the last one (median)",
            statistics.median(changed) * 1000,
            "ms",
            compare=f"p95 {percentile(changed, 95) * 1000:.1f} ms",
            target=f"< {TARGET_MS:g} ms",
            met=percentile(changed, 95) * 1000 < TARGET_MS,
            notes=[f"before_turn: {spread_ms(changed)}"],
        ),
        Result(
            "10d",
            "checkpoint after a turn that changed 5 small files (median)",
            statistics.median(after) * 1000,
            "ms",
            target="reported (before the terminal event)",
            notes=[f"after_turn: {spread_ms(after)}"],
        ),
    ]


# -- 10e: a session's disk space ------------------------------------------------------------


def session_space(home: Path, root: Path, turns: int) -> Result:
    from jupyter_assistant.checkpoints import TurnCheckpoints

    store = home / "session-store"
    checkpoints = TurnCheckpoints(store)
    folder = str(root)
    files = small_files(root)
    checkpoints.before_turn(SESSION, "t-0", folder, NOTEBOOK)
    first_blobs = disk_usage(store / "checkpoints" / "blobs")
    first_record = disk_usage(store / "checkpoints" / "sessions")
    csv_size = (root / CSV).stat().st_size
    for turn in range(turns):
        if turn:
            checkpoints.before_turn(SESSION, f"t-{turn}", folder, NOTEBOOK)
        change_files(files, 1000 + turn)
        append_csv(root, turn)
        checkpoints.after_turn(SESSION, f"t-{turn}")
    blobs = disk_usage(store / "checkpoints" / "blobs")
    records = disk_usage(store / "checkpoints" / "sessions")
    total = disk_usage(store / "checkpoints")
    csv_after = (root / CSV).stat().st_size
    return Result(
        "10e",
        f"disk space of a {turns}-turn session's checkpoints (du <store>/checkpoints; each turn "
        "changes 5 small files and appends to a 1 MB CSV)",
        total / MiB,
        "MiB",
        target="reported",
        notes=[
            f"the first copy of the folder's files (blobs after the first checkpoint): "
            f"{first_blobs / MiB:.1f} MiB",
            f"the turns' changed contents and their manifests (blobs added by the {turns} "
            f"turns): "
            f"{(blobs - first_blobs) / MiB:.1f} MiB, of which the CSV, kept whole each turn "
            f"({csv_size / MiB:.2f} -> {csv_after / MiB:.2f} MiB): about "
            f"{turns * (csv_size + csv_after) / 2 / MiB:.1f} MiB",
            f"the turns' records (each names its two manifests, kept as blobs): "
            f"{records / MiB:.2f} MiB ({first_record / 1000:.0f} kB after the first)",
            "beyond the first copy, the session used "
            f"{(total - first_blobs) / MiB:.1f} MiB for {turns} turns",
        ],
    )


# -- 10f: through a real server -------------------------------------------------------------


def server_figures(home: Path, root: Path, runs: int) -> Result:
    """Two servers on the same root (the folder), turn_checkpoints on and off."""
    servers = []
    for name, on in (("on", True), ("off", False)):
        servers.append(
            Server(
                home / f"server-{name}",
                config={
                    "ServerApp": {"root_dir": str(root.parent)},
                    "AssistantExtension": {"turn_checkpoints": on},
                },
            )
        )
    api_path = f"{root.name}/{NOTEBOOK}"
    started = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        clients = [server.client() for server in servers]
        sessions = [client.create_session(api_path) for client in clients]
        first_turn = []
        for server, client, session_id in zip(servers, clients, sessions, strict=True):
            began = time.perf_counter()
            through_server(server, client, session_id, [])  # the first checkpoint, warm-up
            first_turn.append(time.perf_counter() - began)
        on, off = interleave(
            runs,
            lambda: through_server(servers[0], clients[0], sessions[0], []),
            lambda: through_server(servers[1], clients[1], sessions[1], []),
        )
        for client in clients:
            client.close()
    finally:
        for server in started:
            server.stop()
    figure = statistics.median(on) * 1000
    base = statistics.median(off) * 1000
    pairs = [a - b for a, b in zip(on, off, strict=True)]
    return Result(
        "10f",
        "POST messages -> first text event, session's notebook in the folder, "
        "turn_checkpoints on vs off",
        figure,
        "ms",
        base,
        compare=f"{figure - base:+.1f} ms",
        target=f"<= off + {TARGET_MS:g} ms",
        met=figure - base < TARGET_MS,
        notes=[
            f"{runs} interleaved runs; median of per-pair differences "
            f"{statistics.median(pairs) * 1000:+.1f} ms",
            f"on: {spread_ms(on)}",
            f"off: {spread_ms(off)}",
            f"the first turn (warm-up: the server's first checkpoint of the folder): "
            f"{first_turn[0] * 1000:.0f} ms on, {first_turn[1] * 1000:.0f} ms off",
        ],
    )


def run(quick: bool = False) -> list[Result]:
    if quick:
        files, small, big, runs, turns, pairs = 100, 4 * MiB, 51 * MiB, 3, 2, 2
    else:
        files, small, big, runs, turns, pairs = 2000, 100 * MiB, 400 * MiB, 20, 20, 15
    with workspace("checkpoints") as home:
        root = home / "work" / "project"
        written = build_folder(root, files, small, big)
        results = engine_figures(home, root, runs, written)
        results.append(session_space(home, root, turns))
        results.append(server_figures(home, root, pairs))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
