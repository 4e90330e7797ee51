"""The labextension is installed by `pip install .` itself: JupyterLab lists it, enabled and OK,
as a prebuilt extension of the Python package (no Node at run time)."""

from __future__ import annotations

import re
import subprocess
import sys


def test_jupyterlab_lists_the_extension_enabled_and_ok() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # drop colours
    line = next((row for row in output.splitlines() if "jupyter-assistant" in row), None)
    assert line is not None, output
    assert re.search(r"jupyter-assistant v\d+\.\d+\.\d+ enabled\s+OK", line), line
