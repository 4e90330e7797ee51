"""Measure 9: the notebook tool ``read_notebook`` on a 500-cell notebook with outputs.

The notebook (``build_notebook``): 500 cells, one in ten Markdown; every code cell prints a few
lines (a stream), one in five shows a DataFrame (an ``execute_result`` with an HTML table and
its text), one in ten fails (a coloured IPython traceback), one in twenty shows a figure (a
40 KB PNG): about 2.7 MB on disk.

9a: ``NotebookToolbox.call(grant, "read_notebook", {})`` on the file through jupyter_server's
``AsyncFileContentsManager`` (the default's base class) on a folder of ``$JA_BENCH_DIR``: the
contents manager's read (file, parse, validation, the trust check), the summary of every cell
and output. The parts are timed alone beside it, and the encoding of the result as the MCP
server sends it (``mcp_server.as_content``).

9b: the whole MCP round trip: ``tools/call read_notebook`` over HTTP to a real server, with the
live capability of a running turn (the fake CLI's ``scenario:hang``; the capability read from
the MCP configuration its CLI was given, as the agent would), until the answer is read. Beside
it, interleaved: ``GET /api/contents/<notebook>`` of the same file (JupyterLab opening it).

Target: under 100 ms, both.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import http.client
import json
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from _common import (
    TOKEN,
    McpClient,
    Result,
    Server,
    interleave,
    mcp_endpoint,
    open_events,
    print_results,
    spread_ms,
    sse_events,
    workspace,
)

CELLS = 500
TARGET_MS = 100.0
NOTEBOOK = "analysis/big.ipynb"


# -- the notebook ----------------------------------------------------------------------------


def png(width: int, height: int, seed: int) -> bytes:
    """A valid RGB PNG of pseudo-random pixels (noise: it does not compress, like a plot's
    anti-aliased lines do not much), ``width * height * 3`` bytes of pixels."""
    state = seed or 1
    rows = []
    for _ in range(height):
        row = bytearray(width * 3)
        for i in range(len(row)):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            row[i] = state >> 23
        rows.append(b"\x00" + bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(rows), 9)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def dataframe_html(rows: int, seed: int) -> str:
    head = "".join(f"<th>{name}</th>" for name in ("region", "amount", "units", "price"))
    body = "".join(
        f"<tr><th>{i}</th><td>region-{(seed + i) % 7}</td><td>{(seed * 31 + i * 17) % 1000}.5"
        f"</td><td>{i * 3}</td><td>{(i * 7) % 100}.25</td></tr>"
        for i in range(rows)
    )
    return (
        "<div>\n<style scoped>\n    .dataframe tbody tr th:only-of-type {\n"
        "        vertical-align: middle;\n    }\n</style>\n"
        '<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">'
        f"<th></th>{head}</tr>\n  </thead>\n  <tbody>\n{body}\n  </tbody>\n</table>\n"
        f"<p>{rows} rows x 4 columns</p>\n</div>"
    )


TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mKeyError\x1b[0m                                  Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[12], line 3\x1b[0m\n\x1b[1;32m      1\x1b[0m \x1b[38;5;28;01mimport\x1b"
    "[39;00m \x1b[38;5;21;01mpandas\x1b[39;00m \x1b[38;5;28;01mas\x1b[39;00m \x1b[38;5;21;01m"
    'pd\x1b[39;00m\n\x1b[0;32m----> 3\x1b[0m df[\x1b[38;5;124m"regoin"\x1b[39m]\n',
    *[
        f"File \x1b[0;32m/opt/conda/lib/python3.11/site-packages/pandas/core/frame.py:{3000 + i}"
        f"\x1b[0m, in \x1b[0;36mDataFrame.__getitem__\x1b[0;34m(self, key)\x1b[0m\n"
        f"\x1b[1;32m   {3000 + i}\x1b[0m indexer \x1b[38;5;241m=\x1b[39m "
        "\x1b[38;5;28mself\x1b[39m\x1b[38;5;241m.\x1b[39mcolumns\x1b[38;5;241m.\x1b[39mget_loc"
        "(key)\n"
        for i in range(8)
    ],
    "\x1b[0;31mKeyError\x1b[0m: 'regoin'",
]


def build_notebook(cells: int = CELLS) -> dict[str, Any]:
    import nbformat

    image = base64.encodebytes(png(120, 110, 7)).decode("ascii")  # ~40 KB, lines as Jupyter's
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    count = 0
    for i in range(cells):
        if i % 10 == 9:
            nb.cells.append(
                nbformat.v4.new_markdown_cell(
                    f"## Step {i}\n\nWe now look at the *{i}th* slice of the sales by region, "
                    "and compare it with the previous quarter.\n",
                    id=f"cell-{i}",
                )
            )
            continue
        count += 1
        source = (
            f"subset = df[df['quarter'] == {i % 4 + 1}]\n"
            f"summary_{i} = subset.groupby('region').agg({{'amount': 'sum', 'units': 'mean'}})\n"
            f"print(len(subset), summary_{i}.shape)\n"
            f"summary_{i}"
        )
        outputs: list[Any] = [
            nbformat.v4.new_output(
                "stream",
                name="stdout",
                text="".join(f"row {j}: region-{j % 7} {j * 13 % 997}\n" for j in range(12)),
            )
        ]
        if i % 10 == 4:
            outputs.append(
                nbformat.v4.new_output(
                    "error", ename="KeyError", evalue="'regoin'", traceback=TRACEBACK
                )
            )
        elif i % 5 == 0:
            outputs.append(
                nbformat.v4.new_output(
                    "execute_result",
                    data={
                        "text/html": dataframe_html(20, i),
                        "text/plain": "\n".join(
                            f"{j}  region-{(i + j) % 7}  {j * 17 % 1000}.5" for j in range(20)
                        ),
                    },
                    execution_count=count,
                )
            )
        if i % 20 == 2:
            outputs.append(
                nbformat.v4.new_output(
                    "display_data",
                    data={"image/png": image, "text/plain": "<Figure size 640x480 with 1 Axes>"},
                    metadata={"image/png": {"width": 120, "height": 110}},
                )
            )
        nb.cells.append(
            nbformat.v4.new_code_cell(
                source, id=f"cell-{i}", execution_count=count, outputs=outputs
            )
        )
    return dict(nb)


def write_notebook(root: Path) -> Path:
    import nbformat

    file = root / NOTEBOOK
    file.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.from_dict(build_notebook()), file)
    return file


# -- 9a: the toolbox on the contents manager -------------------------------------------------


def time_async(loop: asyncio.AbstractEventLoop, make: Any) -> float:
    started = time.perf_counter()
    loop.run_until_complete(make())
    return time.perf_counter() - started


def toolbox_figures(root: Path, runs: int) -> tuple[Result, dict[str, Any]]:
    from jupyter_server.services.contents.filemanager import AsyncFileContentsManager

    from jupyter_assistant.notebook_tools import cells as cell_ops
    from jupyter_assistant.notebook_tools.capabilities import Grant
    from jupyter_assistant.notebook_tools.mcp_server import as_content
    from jupyter_assistant.notebook_tools.toolbox import ContentsStorage, NotebookToolbox

    contents = AsyncFileContentsManager(root_dir=str(root))
    toolbox = NotebookToolbox(ContentsStorage(contents))
    grant = Grant("bench-session", "bench-turn", NOTEBOOK)
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(toolbox.call(grant, "read_notebook", {}))
        notebook = loop.run_until_complete(contents.get(NOTEBOOK, content=True, type="notebook"))
        nb = notebook["content"]
        call, get = interleave(
            runs,
            lambda: time_async(loop, lambda: toolbox.call(grant, "read_notebook", {})),
            lambda: time_async(loop, lambda: contents.get(NOTEBOOK, content=True, type="notebook")),
        )
    finally:
        loop.close()
    summarize: list[float] = []
    encode: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        cell_ops.read_cells(nb, None, None, True, toolbox.limits.outputs)
        summarize.append(time.perf_counter() - started)
        fresh = copy.deepcopy(result)
        started = time.perf_counter()
        content = as_content(fresh)
        encode.append(time.perf_counter() - started)
    text = content[0].text
    images = len(content) - 1
    figure = statistics.median(call) * 1000
    info = {"text_chars": len(text), "images": images, "cells": result["cell_count"]}
    return (
        Result(
            "9a",
            f"read_notebook, {CELLS} cells with outputs: NotebookToolbox.call on "
            "AsyncFileContentsManager",
            figure,
            "ms",
            target=f"< {TARGET_MS:g} ms",
            met=figure < TARGET_MS,
            notes=[
                f"call: {spread_ms(call)}",
                f"of which the contents manager's get (read, parse, validate, trust check): "
                f"{spread_ms(get)}",
                f"and the summary of the cells (cells.read_cells): {spread_ms(summarize)}",
                f"not in the call: the result encoded as the MCP server sends it (as_content, "
                f"compact json.dumps): {spread_ms(encode)}",
                f"the answer: {len(text) / 1000:.0f} k characters of JSON and {images} images",
            ],
        ),
        info,
    )


# -- 9b: the MCP round trip --------------------------------------------------------------------


def get_contents(conn: http.client.HTTPConnection) -> float:
    started = time.perf_counter()
    conn.request(
        "GET", f"/api/contents/{NOTEBOOK}?content=1", headers={"Authorization": f"token {TOKEN}"}
    )
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"GET contents: HTTP {response.status}")
    return elapsed


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.01)


def mcp_figures(home: Path, runs: int, info: dict[str, Any]) -> Result:
    argv_file = home / "argv.json"
    server = Server(home, env={"FAKE_CLAUDE_ARGV_FILE": str(argv_file)})
    write_notebook(server.root)
    with server:
        client = server.client()
        session_id = client.create_session(NOTEBOOK)
        client.call("POST", f"/sessions/{session_id}/messages", {"content": "scenario:hang"})
        wait_for(argv_file)
        argv = json.loads(argv_file.read_text())["argv"]
        mcp = McpClient(*mcp_endpoint(Path(argv[argv.index("--mcp-config") + 1])))
        contents = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            answer = mcp.call("tools/call", {"name": "read_notebook", "arguments": {}})
            size = len(json.dumps(answer))
            mcp.read_notebook()  # warm-up
            get_contents(contents)
            served, baseline = interleave(runs, mcp.read_notebook, lambda: get_contents(contents))
        finally:
            mcp.close()
            contents.close()
            client.call("POST", f"/sessions/{session_id}/cancel")
            events = open_events(server.port, session_id)
            for event in sse_events(events):
                if event["event"] in ("done", "error", "cancelled"):
                    break
            events.close()
            client.close()
    figure = statistics.median(served) * 1000
    base = statistics.median(baseline) * 1000
    return Result(
        "9b",
        f"read_notebook, {CELLS} cells with outputs: MCP tools/call over HTTP to the server "
        "(live capability)",
        figure,
        "ms",
        base,
        compare=f"{figure - base:+.1f} ms vs GET contents",
        target=f"< {TARGET_MS:g} ms",
        met=figure < TARGET_MS,
        notes=[
            f"tools/call: {spread_ms(served)}; the answer {size / 1000:.0f} kB",
            f"baseline, GET /api/contents of the same notebook: {spread_ms(baseline)}",
            f"9a's answer: {info['cells']} cells, {info['text_chars'] / 1000:.0f} k characters "
            f"of JSON text and {info['images']} images",
        ],
    )


def run(quick: bool = False) -> list[Result]:
    runs = 3 if quick else 25
    with workspace("read-notebook") as home:
        file = write_notebook(home / "files")
        size = file.stat().st_size
        local, info = toolbox_figures(home / "files", runs)
        local.notes.append(f"the notebook: {size / 2**20:.1f} MiB on disk")
        served = mcp_figures(home / "server", runs, info)
    return [local, served]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    print_results(run(parser.parse_args().quick))


if __name__ == "__main__":
    sys.exit(main())
