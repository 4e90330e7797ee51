"""Trait types of the settings: lists that can be given on the command line safely.

``--AssistantExtension.permission_denied_tools=["Bash(rm:*)"]`` typed in a shell reaches
traitlets as ``[Bash(rm:*)]`` (the shell ate the quotes): not JSON, so traitlets keeps it as a
one-element list holding that text, and a deny rule silently matches nothing. ``StringList``
refuses such an entry with the ways that work.
"""

from __future__ import annotations

import json
from typing import Any

from traitlets import List, TraitError, Unicode

HOW_TO_SET_LISTS = (
    "set a list on the command line as JSON inside single quotes, "
    '--{name}=\'["first", "second"]\', or repeat the option once per item, '
    '--{name}=first --{name}=second; in a config file: c.{name} = ["first", "second"]'
)


class StringList(List):  # type: ignore[type-arg]
    """A list of strings; an item that is a list literal the shell mangled is an error."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(Unicode(), **kwargs)

    def validate(self, obj: Any, value: Any) -> Any:
        items: list[str] = []
        for item in super().validate(obj, value) or ():
            text = item.strip()
            if not (text.startswith("[") and text.endswith("]")):
                items.append(item)
                continue
            # A JSON list given as one option (traitlets passes it on as text when it does not
            # know the option's type yet, as for a server extension's settings) is that list.
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
                items.extend(parsed)
                continue
            where = f"{getattr(obj, 'config_name', type(obj).__name__)}.{self.name}"
            raise TraitError(
                f"{where}: the item {item!r} looks like a list whose quotes the shell removed, "
                f"so it would match nothing; {HOW_TO_SET_LISTS.format(name=where)}"
            )
        return super().validate(obj, items) if items != value else value
