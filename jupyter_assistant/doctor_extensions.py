"""The doctor's checks of the two extensions: the server extension is enabled and loads, and the
JupyterLab extension (the sidebar) is installed and enabled."""

from __future__ import annotations

import logging
import re
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue

from ._version import __version__
from .doctor_report import Check
from .kernel_client import LoadedConfig

EXTENSION = "jupyter_assistant"
LABEXTENSION = "jupyter-assistant"
LAB_PLUGIN = "jupyter-assistant:plugin"


# -- the server extension ---------------------------------------------------------------------


def _explicit_extensions(config: Config) -> dict[str, bool]:
    """``c.ServerApp.jpserver_extensions`` from the config files: it outranks the ``.d``
    folders (as in ``ServerApp.find_server_extensions``)."""
    if "ServerApp" not in config or "jpserver_extensions" not in config.ServerApp:
        return {}
    value = config.ServerApp.jpserver_extensions
    if isinstance(value, LazyConfigValue):
        value = value.get_value({})
    return dict(value) if isinstance(value, dict) else {}


def check_server_extension(loaded: LoadedConfig, config_dirs: list[str]) -> Check:
    from jupyter_server.extension.config import ExtensionConfigManager
    from jupyter_server.extension.manager import ExtensionPackage

    title = "Server extension"
    enable = f"jupyter server extension enable --user {EXTENSION}"
    explicit = _explicit_extensions(loaded.config)
    where: str | None = None
    enabled: bool | None = None
    if EXTENSION in explicit:
        enabled, where = bool(explicit[EXTENSION]), "c.ServerApp.jpserver_extensions"
    else:
        # The server merges every config folder, the first one listed winning; find which.
        for folder in config_dirs:
            manager = ExtensionConfigManager(read_config_path=[folder])
            found = manager.get_jpserver_extensions()  # type: ignore[no-untyped-call]
            if EXTENSION in found:
                enabled, where = bool(found[EXTENSION]), folder
                break
    if enabled is None:
        return Check(
            "server_extension",
            title,
            False,
            f"{EXTENSION} is not enabled in any Jupyter config folder",
            fix=f"{enable}   (or reinstall: pip install jupyter-assistant)",
        )
    if not enabled:
        fix = (
            f"set c.ServerApp.jpserver_extensions['{EXTENSION}'] = True in your config"
            if where == "c.ServerApp.jpserver_extensions"
            else enable
        )
        return Check(
            "server_extension", title, False, f"{EXTENSION} is disabled (in {where})", fix=fix
        )
    try:
        package = ExtensionPackage(name=EXTENSION, enabled=True)  # type: ignore[no-untyped-call]
        valid = package.validate()  # type: ignore[no-untyped-call]
    except Exception as exc:  # the package cannot be imported: report, do not crash
        return Check(
            "server_extension",
            title,
            False,
            f"{EXTENSION} is enabled but cannot be loaded: {exc}",
            fix="pip install --force-reinstall jupyter-assistant",
        )
    if not valid:
        return Check(
            "server_extension",
            title,
            False,
            f"{EXTENSION} is enabled but is not a valid server extension",
            fix="pip install --force-reinstall jupyter-assistant",
        )
    return Check(
        "server_extension",
        title,
        True,
        f"{EXTENSION} {__version__} is enabled (in {where})",
        details={"enabled_in": where},
    )


# -- the JupyterLab extension -----------------------------------------------------------------


def _disabled(name: str, disabled: dict[str, Any]) -> bool:
    """JupyterLab's rule (``jupyterlab.commands._is_disabled``): a key is a name or a regular
    expression; a value of False re-enables."""
    for pattern, value in disabled.items():
        if value is False:
            continue
        if name == pattern:
            return True
        try:
            if re.compile(pattern).match(name) is not None:
                return True
        except re.error:
            continue
    return False


def check_labextension() -> Check:
    title = "JupyterLab extension"
    try:
        from jupyterlab.commands import AppOptions, get_app_info
        from jupyterlab.labapp import LabApp
    except ImportError:
        return Check(
            "labextension",
            title,
            False,
            "JupyterLab is not installed, so there is no Assistant sidebar",
            fix="pip install 'jupyterlab>=4'   (the %%assistant magics work without it)",
            required=False,
        )
    # As `jupyter labextension list` finds them: LabApp's extension folders and page config.
    lab = LabApp()
    lab.load_config_file()
    paths = list(lab.labextensions_path) + list(lab.extra_labextensions_path)
    quiet = logging.getLogger("jupyter_assistant.doctor.jupyterlab")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    info = get_app_info(AppOptions(labextensions_path=paths, logger=quiet))
    found = info.get("federated_extensions", {}).get(LABEXTENSION)
    if found is None:
        return Check(
            "labextension",
            title,
            False,
            f"{LABEXTENSION} is not installed in any of {', '.join(paths)}",
            fix="pip install --force-reinstall jupyter-assistant   (from a source checkout: "
            "jupyter labextension develop . --overwrite)",
            required=False,
        )
    disabled = info.get("disabled", {})
    for name in (LABEXTENSION, LAB_PLUGIN):
        if _disabled(name, disabled):
            return Check(
                "labextension",
                title,
                False,
                f"{LABEXTENSION} {found.get('version')} is installed but disabled",
                fix=f"jupyter labextension enable {name}",
                required=False,
                details={"path": found.get("ext_path")},
            )
    return Check(
        "labextension",
        title,
        True,
        f"{LABEXTENSION} {found.get('version')} is installed and enabled ({found.get('ext_path')})",
        required=False,
        details={"path": found.get("ext_path"), "version": found.get("version")},
    )
