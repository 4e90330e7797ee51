"""Server start-up stays cheap: loading the extension imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["pydantic", "psutil", "filelock", "jupyter_assistant.store", "jupyter_assistant.turns"]


def test_loading_the_extension_imports_nothing_heavy() -> None:
    # What the server does at start-up: find the extension points, import the app and handlers.
    code = (
        "import sys, jupyter_assistant\n"
        "points = jupyter_assistant._jupyter_server_extension_points()\n"
        "import jupyter_assistant.handlers\n"
        "assert points[0]['app'].name == 'jupyter_assistant'\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
