"""Bounded summaries of notebook variables, sent along with ``%assistant --with``.

Never imports pandas or numpy: a value of theirs means they are loaded already.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

VARIABLE_CHARS = 4000  # per variable
CONTEXT_CHARS = 24000  # all variables of one message
HEAD_ROWS = 5

_repr = reprlib.Repr()
_repr.maxstring = 400
_repr.maxother = 400
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 20
_repr.maxlevel = 3


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    top = module.split(".")[0]
    if module == "builtins":
        return cls.__qualname__
    return (
        f"{top}.{cls.__qualname__}"
        if top in ("pandas", "numpy")
        else f"{module}.{cls.__qualname__}"
    )


def _is(value: Any, package: str, *names: str) -> bool:
    """Is ``value`` one of ``package``'s ``names`` (or a subclass), without importing it."""
    return any(
        cls.__module__.split(".")[0] == package and cls.__name__ in names
        for cls in type(value).__mro__
    )


def _safe(describe: Callable[[], str]) -> str:
    try:
        return describe()
    except Exception as exc:  # a broken __repr__ must not break the turn
        return f"<could not describe: {type(exc).__name__}: {exc}>"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40].rstrip() + f"\n… [{len(text) - limit + 40} more characters]"


def summarize_value(name: str, value: Any) -> str:
    """A bounded description: type, then shape/dtypes/head for DataFrames and arrays, else a
    truncated repr. Never imports pandas or numpy (a value of theirs means they are loaded)."""
    lines = [f"#### `{name}`: {_type_name(value)}"]
    if _is(value, "pandas", "DataFrame"):
        lines.append(f"shape: {_safe(lambda: str(value.shape))}")
        lines.append(
            "dtypes: "
            + _safe(
                lambda: (
                    ", ".join(f"{col}: {dtype}" for col, dtype in list(value.dtypes.items())[:50])
                    + (f", … ({value.shape[1] - 50} more columns)" if value.shape[1] > 50 else "")
                )
            )
        )
        head = _safe(lambda: value.head(HEAD_ROWS).to_string(max_cols=20, max_colwidth=40))
        lines.append(f"first {HEAD_ROWS} rows:\n```\n{head}\n```")
    elif _is(value, "pandas", "Series"):
        lines.append(
            f"length: {_safe(lambda: str(len(value)))}, dtype: {_safe(lambda: str(value.dtype))}"
        )
        head = _safe(lambda: value.head(HEAD_ROWS).to_string(max_rows=HEAD_ROWS))
        lines.append(f"first {HEAD_ROWS} values:\n```\n{head}\n```")
    elif _is(value, "numpy", "ndarray") or _is(value, "numpy", "matrix"):
        lines.append(
            f"shape: {_safe(lambda: str(value.shape))}, dtype: {_safe(lambda: str(value.dtype))}"
        )
        lines.append(f"```\n{_safe(lambda: _numpy_preview(value))}\n```")
    else:
        size = _safe(lambda: str(len(value))) if hasattr(value, "__len__") else None
        if size is not None and not size.startswith("<"):
            lines.append(f"length: {size}")
        lines.append(f"```\n{_safe(lambda: _repr.repr(value))}\n```")
    return _truncate("\n".join(lines), VARIABLE_CHARS)


def _numpy_preview(value: Any) -> str:
    import numpy  # present: the value is a numpy array

    return str(numpy.array2string(value, threshold=50, edgeitems=3, max_line_width=100))


def summarize_variables(names: Iterable[str], user_ns: Mapping[str, Any]) -> str:
    """Summaries of the named notebook variables, within ``CONTEXT_CHARS`` in all."""
    parts: list[str] = []
    used = 0
    names = list(names)
    for index, name in enumerate(names):
        summary = summarize_value(name, user_ns[name])
        if used + len(summary) > CONTEXT_CHARS:
            rest = ", ".join(names[index:])
            parts.append(f"(left out to keep the request small: {rest})")
            break
        parts.append(summary)
        used += len(summary)
    return "\n\n".join(parts)
