"""The health row of a provider whose health check raised, as the HTTP API and the doctor
report it: a broken plugin is shown as unavailable with the reason, never raised."""

from __future__ import annotations

from typing import Any


def failed_health(name: str, provider: Any, exc: Exception) -> dict[str, Any]:
    return {
        "name": name,
        "display_name": getattr(provider, "display_name", name) or name,
        "available": False,
        "version": None,
        "problem": f"Health check failed: {exc}",
        "credentials": "unknown",
        "executable": None,
    }
