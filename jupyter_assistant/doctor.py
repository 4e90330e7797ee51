"""``jupyter assistant doctor``: is this machine set up to use the assistant, and if not, the
exact fix. The checks, in order: the server extension is enabled, the JupyterLab extension is
installed and enabled, each provider's CLI is found (path, version) and its credentials
(present, missing or unknown: never a billed call), the store folder is private and writable,
and which Jupyter config files set the assistant's options.

Nothing here writes anything: the store is inspected, not created or tightened (building a
``SessionStore`` would quietly fix some of what the doctor must report).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import JSONFileConfigLoader, LazyConfigValue, PyFileConfigLoader

from ._version import __version__
from .kernel_client import LoadedConfig
from .settings import CONFIG_SECTION, STORE_ENV, EngineSettings

EXTENSION = "jupyter_assistant"
LABEXTENSION = "jupyter-assistant"
LAB_PLUGIN = "jupyter-assistant:plugin"
STORE_SUBDIRS = ("sessions", "locks", "processes", "corrupt", "turns")


log = logging.getLogger(__name__)


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


# -- providers ---------------------------------------------------------------------------------


async def _health_rows(settings: EngineSettings) -> list[tuple[Any, dict[str, Any]]]:
    from .providers import ProviderRegistry

    registry = ProviderRegistry(parent=settings, allowed=settings.allowed_providers)

    async def one(name: str) -> tuple[Any, dict[str, Any]]:
        provider = registry.get(name)
        try:
            return provider, (await provider.health()).to_json()
        except Exception as exc:  # a broken plugin is reported, not raised
            return provider, {
                "name": name,
                "display_name": getattr(provider, "display_name", name) or name,
                "available": False,
                "version": None,
                "problem": f"Health check failed: {exc}",
                "credentials": "unknown",
                "executable": None,
            }

    return list(await asyncio.gather(*(one(name) for name in registry.names())))


def usable(row: dict[str, Any]) -> bool:
    """Can this provider answer? Its CLI runs, and its credentials are not known to be missing
    (``unknown`` is given the benefit of the doubt: only a billed call could tell)."""
    return bool(row.get("available")) and row.get("credentials") != "missing"


def _argv(provider: Any) -> list[str] | None:
    """The provider's command line, if it has the built-in providers' helper."""
    try:
        return [str(part) for part in provider.executable_argv()]
    except Exception:  # a plugin without it
        return None


def provider_check(provider: Any, row: dict[str, Any], default: str) -> Check:
    name = row["name"]
    is_default = name == default
    title = f"Provider {name} ({row['display_name']}{', the default' if is_default else ''})"
    # The same steps as the sidebar's onboarding card (the provider's install_step/login_step).
    install_step = getattr(provider, "install_step", None)
    login_step = getattr(provider, "login_step", None)
    install = install_step.command if install_step else None
    install = install or getattr(provider, "install_hint", "") or None
    login = login_step.as_sentence() if login_step else None
    details = {key: row.get(key) for key in ("executable", "version", "credentials", "available")}
    if not row.get("available"):
        summary, fix = row.get("problem") or "not available", install
        argv = _argv(provider)
        if row.get("executable") is None and argv == []:
            summary = "not configured (it has no command)"
        elif row.get("executable") is None and argv:
            # The provider's message names the fix too; here the finding and the fix are apart.
            where = "does not exist or is not executable" if os.sep in argv[0] else "is not on PATH"
            summary = f"its CLI was not found ({argv[0]!r} {where})"
            setting = f"c.{type(provider).__name__}.command"
            path = "" if os.sep in argv[0] else "add its folder to PATH or "
            fix = f"{install}   (or, if it is installed elsewhere, {path}set {setting} to its path)"
        return Check(
            f"provider:{name}", title, False, summary, fix=fix, required=is_default, details=details
        )
    found = f"{row.get('executable')} {row.get('version') or '(version unknown)'}"
    credentials = row.get("credentials", "unknown")
    if credentials == "missing":
        return Check(
            f"provider:{name}",
            title,
            False,
            f"{found}; not logged in (no credentials found)",
            fix=login or row.get("problem"),
            required=is_default,
            details=details,
        )
    if credentials == "present":
        return Check(
            f"provider:{name}",
            title,
            True,
            f"{found}; credentials found",
            required=is_default,
            details=details,
        )
    check_command = getattr(provider, "login_check", None)
    how = f"to check it, run `{check_command}` in a terminal" if check_command else ""
    how += ("; " if how else "") + (f"to log in: {login}" if login else "")
    return Check(
        f"provider:{name}",
        title,
        True,
        f"{found}; login unknown (no API key or credentials file found, and the CLI could not "
        "say whether it is logged in)",
        note=how or None,
        required=is_default,
        details={**details, "login_check": check_command},
    )


def check_providers(settings: EngineSettings) -> list[Check]:
    rows = asyncio.run(_health_rows(settings))
    default = settings.default_provider
    checks = [provider_check(provider, row, default) for provider, row in rows]
    if default not in {row["name"] for _, row in rows}:
        allowed = settings.allowed_providers
        reason = (
            f"not among the allowed providers ({', '.join(allowed)})"
            if allowed is not None
            else "not installed (no such provider plugin)"
        )
        checks.insert(
            0,
            Check(
                f"provider:{default}",
                f"Provider {default} (the default)",
                False,
                f"the default provider {default!r} is {reason}",
                fix=f"set c.{CONFIG_SECTION}.default_provider to one of: "
                + ", ".join(row["name"] for _, row in rows),
            ),
        )
    # The default first: it decides whether the assistant works.
    checks.sort(key=lambda check: check.name != f"provider:{default}")
    return checks


# -- the store ---------------------------------------------------------------------------------


def check_store(store_dir: str) -> Check:
    title = "Store"
    path = Path(store_dir)
    source = "" if store_dir != os.environ.get(STORE_ENV) else f" (from ${STORE_ENV})"
    private = f"chmod -R go-rwx {path}"
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if os.access(parent, os.W_OK | os.X_OK):
            return Check(
                "store",
                title,
                True,
                f"{path}{source} does not exist yet; it is created (mode 700) at first use",
                details={"path": str(path), "exists": False},
            )
        return Check(
            "store",
            title,
            False,
            f"{path}{source} does not exist and cannot be created ({parent} is not writable)",
            fix=f"mkdir -m 700 -p {path}   (or choose another folder: "
            f"c.{CONFIG_SECTION}.store_dir or ${STORE_ENV})",
            details={"path": str(path), "exists": False},
        )
    problems: list[str] = []
    fix: str | None = None
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        return Check(
            "store",
            title,
            False,
            f"{path} is not a folder",
            fix=f"remove it or choose another folder (c.{CONFIG_SECTION}.store_dir)",
        )
    if st.st_uid != os.geteuid():
        problems.append(f"it belongs to another user (uid {st.st_uid})")
        fix = f"use a folder of your own: c.{CONFIG_SECTION}.store_dir or ${STORE_ENV}"
    exposed = []
    for folder in [path, *(path / sub for sub in STORE_SUBDIRS)]:
        try:
            mode = stat.S_IMODE(folder.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            exposed.append(f"{folder.name if folder != path else path} (mode {mode:o})")
    if exposed:
        problems.append("other users can read or write it: " + ", ".join(exposed))
        fix = fix or private
    if not os.access(path, os.W_OK | os.X_OK):
        problems.append("it is not writable")
        fix = fix or f"chmod u+rwx {path}   (or check that its file system is not read-only)"
    sessions = path / "sessions"
    count = sum(1 for _ in sessions.glob("*.json")) if sessions.is_dir() else 0
    details = {"path": str(path), "exists": True, "sessions": count}
    if problems:
        return Check(
            "store",
            title,
            False,
            f"{path}{source}: " + "; ".join(problems),
            fix=fix,
            details=details,
        )
    return Check(
        "store",
        title,
        True,
        f"{path}{source} is private (700), yours and writable; {count} conversation(s)",
        details=details,
    )


# -- the config --------------------------------------------------------------------------------


def _sections_set(config: Config, sections: set[str]) -> list[str]:
    return sorted(
        f"{section}.{key}" for section in sections if section in config for key in config[section]
    )


def _load_one(file: str) -> Config | None:
    loader_class = PyFileConfigLoader if file.endswith(".py") else JSONFileConfigLoader
    try:
        return loader_class(os.path.basename(file), path=os.path.dirname(file)).load_config()
    except Exception:  # reported by load_config already
        return None


def check_config(
    loaded: LoadedConfig, overrides: Config, settings_error: str | None
) -> tuple[Check, list[str]]:
    from .providers import discover_provider_classes

    sections = {CONFIG_SECTION, *(cls.__name__ for cls in discover_provider_classes().values())}
    title = "Jupyter config"
    setters: list[str] = []
    for file in loaded.files:
        config = _load_one(file)
        keys = _sections_set(config, sections) if config is not None else []
        if keys:
            setters.append(f"{file}: {', '.join(keys)}")
    command_line = _sections_set(overrides, sections)
    if command_line:
        setters.append(f"command line: {', '.join(command_line)}")
    details = {"files_read": list(loaded.files), "assistant_options": setters}
    problems = list(loaded.problems)
    if settings_error:
        problems.append(settings_error)
    if problems:
        return (
            Check(
                "config",
                title,
                False,
                "; ".join(problems),
                fix="fix or remove the setting or file named above (the server skips a file "
                "it cannot load, and refuses an invalid setting)",
                details=details,
            ),
            setters,
        )
    summary = (
        "the assistant's options are set in " + "; ".join(setters)
        if setters
        else "no config file sets the assistant's options: the defaults apply"
    )
    return Check("config", title, True, summary, details=details), setters


# -- all of it ---------------------------------------------------------------------------------


def run(loaded: LoadedConfig, overrides: Config, config_dirs: list[str]) -> Report:
    """Every check, in the order the issue names them."""
    from traitlets import TraitError

    config = Config()
    config.merge(loaded.config)
    config.merge(overrides)
    settings_error = None
    try:
        settings = EngineSettings(config=config)
    except (TraitError, ValueError) as exc:  # the validators raise ValueError
        settings_error = f"invalid setting: {exc}"
        # The providers' own settings still apply; the assistant's fall back to defaults.
        settings = EngineSettings(
            config=Config({k: v for k, v in config.items() if k != CONFIG_SECTION})
        )
    merged = LoadedConfig(config, loaded.files, loaded.problems)
    checks = [check_server_extension(merged, config_dirs), check_labextension()]
    checks += check_providers(settings)
    checks.append(check_store(settings.store_dir))
    checks.append(check_config(loaded, overrides, settings_error)[0])
    return Report(checks, settings.default_provider)


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
