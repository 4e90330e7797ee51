"""The doctor's checks of what the assistant needs at run time: each provider's CLI (path,
version) and credentials (present, missing or unknown: never a billed call), the store folder
(private and writable: inspected, never created or tightened), and which Jupyter config files
set the assistant's options."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from .doctor_report import Check
from .kernel_client import LoadedConfig
from .provider_health import failed_health
from .settings import CONFIG_SECTION, STORE_ENV, EngineSettings

STORE_SUBDIRS = ("sessions", "locks", "processes", "corrupt", "turns")


# -- providers ---------------------------------------------------------------------------------


async def _health_rows(settings: EngineSettings) -> list[tuple[Any, dict[str, Any]]]:
    from .providers import ProviderRegistry

    registry = ProviderRegistry(parent=settings, allowed=settings.allowed_providers)

    async def one(name: str) -> tuple[Any, dict[str, Any]]:
        provider = registry.get(name)
        try:
            return provider, (await provider.health()).to_json()
        except Exception as exc:  # a broken plugin is reported, not raised
            return provider, failed_health(name, provider, exc)

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
