"""The fenced code blocks of a reply: for ``%%assistant --code`` and the notebook export."""

from __future__ import annotations

import re

CODE_BLOCK = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
PYTHON_LANGS = {"", "python", "py", "python3", "ipython", "ipython3"}


def first_code_block(text: str) -> str | None:
    """The reply's first Python (or untagged) fenced code block, else its first block."""
    blocks = [(m.group(1).lower(), m.group(2)) for m in CODE_BLOCK.finditer(text)]
    for lang, body in blocks:
        if lang in PYTHON_LANGS:
            return body.rstrip("\n")
    return blocks[0][1].rstrip("\n") if blocks else None
