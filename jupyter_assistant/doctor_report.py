"""The doctor's report: one ``Check`` per finding, and the text ``jupyter assistant doctor``
prints (``--json`` prints ``Report.to_json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._version import __version__


@dataclass
class Check:
    """One line of the report: ✓ or ✗, what was found, and the fix when it failed."""

    name: str
    title: str
    ok: bool
    summary: str
    fix: str | None = None
    note: str | None = None
    # False: shown, but does not decide the exit status (another provider, the sidebar).
    required: bool = True
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]
    default_provider: str

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks if check.required)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "version": __version__,
            "default_provider": self.default_provider,
            "checks": [asdict(check) for check in self.checks],
        }


def format_report(report: Report) -> str:
    lines = [f"jupyter assistant doctor (jupyter_assistant {__version__})", ""]
    for check in report.checks:
        mark = "✓" if check.ok else "✗"
        optional = "" if check.ok or check.required else " (optional)"
        lines.append(f"{mark} {check.title}{optional}: {check.summary}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
        if check.note:
            lines.append(f"    note: {check.note}")
    lines.append("")
    default = report.default_provider
    if report.ok:
        unsure = [
            c
            for c in report.checks
            if c.name == f"provider:{default}" and c.details.get("credentials") == "unknown"
        ]
        if unsure:
            command = unsure[0].details.get("login_check")
            lines.append(
                f"Ready, except that the login of the default provider {default!r} is unknown"
                + (f": run `{command}` to check it." if command else ".")
            )
        else:
            lines.append(f"Ready: the default provider {default!r} can run.")
    else:
        failed = [c.title for c in report.checks if c.required and not c.ok]
        lines.append("Not ready: fix " + "; ".join(failed) + ", then run this again.")
    return "\n".join(lines)
