"""Provider plugins, found through the entry point group ``jupyter_assistant.providers``."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

from ..errors import BadRequest
from .base import Provider

ENTRY_POINT_GROUP = "jupyter_assistant.providers"
log = logging.getLogger(__name__)


def discover_provider_classes() -> dict[str, type[Provider]]:
    """Every registered provider class by name. A plugin that fails to load is logged, skipped."""
    classes: dict[str, type[Provider]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the server down
            log.error("Assistant provider %r could not be loaded: %s", ep.name, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            log.error("Assistant provider %r is not a Provider subclass: %r", ep.name, cls)
            continue
        classes[ep.name] = cls
    if "claude" not in classes:
        # Running from a source tree that was never pip-installed: keep the built-in one.
        from .claude_code import ClaudeCodeProvider

        classes["claude"] = ClaudeCodeProvider
    return classes


class ProviderRegistry:
    """Instantiates each provider once, as a child of the configurable ``parent`` so that
    ``c.<ProviderClass>.<setting>`` applies."""

    def __init__(self, parent: Any = None, allowed: list[str] | None = None) -> None:
        self._parent = parent
        self._allowed = allowed
        self._classes = discover_provider_classes()
        self._instances: dict[str, Provider] = {}

    def names(self) -> list[str]:
        names = sorted(self._classes)
        if self._allowed:
            names = [name for name in names if name in self._allowed]
        return names

    def get(self, name: str) -> Provider:
        if name not in self.names():
            raise BadRequest(
                f"Unknown provider {name!r}; available: {', '.join(self.names()) or 'none'}"
            )
        if name not in self._instances:
            self._instances[name] = self._classes[name](parent=self._parent)
        return self._instances[name]


__all__ = ["ENTRY_POINT_GROUP", "Provider", "ProviderRegistry", "discover_provider_classes"]
