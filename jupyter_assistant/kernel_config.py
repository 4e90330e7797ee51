"""The settings a kernel uses: the Jupyter server's config files, read as the server reads
them (``c.AssistantExtension.*``, ``c.ClaudeCodeProvider.*`` in ``jupyter_server_config.py`` /
``.json``), with the kernel's own IPython config on top, without importing jupyter_server
(about a second in a kernel)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_core.paths import jupyter_config_path
from traitlets.config import Config
from traitlets.config.loader import (
    ConfigFileNotFound,
    JSONFileConfigLoader,
    PyFileConfigLoader,
)

from .settings import EngineSettings

# Config files the server reads (traitlets' rule: every config dir, lowest priority first).
SERVER_CONFIG_FILES = ("jupyter_config", "jupyter_server_config")

# AssistantExtension settings that only matter to a server (streams, periodic reaping, the
# notebook tools, which the server serves: a kernel's turns do not get them yet).
SERVER_ONLY_SETTINGS = frozenset(
    {
        "sse_keepalive_seconds",
        "reap_interval_seconds",
        "notebook_tools_enabled",
        "notebook_tools_url",
        "tool_output_max_chars",
        "tool_image_max_bytes",
        "tool_source_max_chars",
        "run_cell_timeout_seconds",
    }
)

# The engine settings, from the same config section (c.AssistantExtension.*) as the server's.
KernelSettings = EngineSettings


@dataclass
class LoadedConfig:
    config: Config
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _user_config_disabled(environ: Mapping[str, str]) -> bool:
    """JupyterHub's ``disable_user_config``, as its single-user server reads it."""
    return environ.get("JUPYTERHUB_DISABLE_USER_CONFIG", "").lower() not in ("", "0", "false")


def _outside_home(folders: Iterable[str]) -> list[str]:
    home = Path.home().resolve()
    return [f for f in folders if not Path(f).resolve().is_relative_to(home)]


def _load_files(folders: list[str], result: LoadedConfig) -> None:
    for base in SERVER_CONFIG_FILES:
        for folder in reversed(folders):  # lowest priority first, so later files win
            for loader_class, suffix in (
                (PyFileConfigLoader, ".py"),
                (JSONFileConfigLoader, ".json"),
            ):
                loader = loader_class(base + suffix, path=folder)
                try:
                    loaded = loader.load_config()
                except ConfigFileNotFound:
                    continue
                except Exception as exc:  # a broken file is the user's to fix; say which
                    name = loader.full_filename or os.path.join(folder, base + suffix)
                    result.problems.append(f"{name}: {exc}")
                    continue
                result.config.merge(loaded)
                if loader.full_filename not in result.files:
                    result.files.append(loader.full_filename)


def load_config(
    ipython_config: Config | None = None,
    environ: Mapping[str, str] | None = None,
    paths: Iterable[str] | None = None,
) -> LoadedConfig:
    """The settings a kernel uses: the Jupyter server config files, merged as the server merges
    them, with the kernel's own IPython config counting as the user's own config.

    Only ``jupyter_config`` and ``jupyter_server_config`` (``.py`` then ``.json``) are read:
    the server reads ``jupyter_server_config.d/*.json`` for enabling extensions only. A file
    that fails to load is reported and skipped, as the server does. As for the server, the
    folders of ``$JUPYTER_CONFIG_PATH`` (where JupyterHub admins put their policy) outrank the
    user's, and with JupyterHub's ``disable_user_config`` nothing in the home folder is read.
    """
    env = os.environ if environ is None else environ
    folders = list(jupyter_config_path() if paths is None else paths)
    if _user_config_disabled(env):
        folders = _outside_home(folders)
        ipython_config = None
    result = LoadedConfig(Config())
    _load_files(folders, result)
    if ipython_config is not None:
        result.config.merge(ipython_config)
        # ...but what outranks the user's own config still does.
        explicit = {p.rstrip(os.sep) for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep)}
        _load_files([f for f in folders if f.rstrip(os.sep) in explicit - {""}], result)
    return result
