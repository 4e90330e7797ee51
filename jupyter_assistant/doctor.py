"""``jupyter assistant doctor``: is this machine set up to use the assistant, and if not, the
exact fix. The checks, in order: the server extension is enabled, the JupyterLab extension is
installed and enabled, each provider's CLI is found (path, version) and its credentials
(present, missing or unknown: never a billed call), the store folder is private and writable,
and which Jupyter config files set the assistant's options.

Nothing here writes anything: the store is inspected, not created or tightened (building a
``SessionStore`` would quietly fix some of what the doctor must report).
"""

from __future__ import annotations

from traitlets.config import Config

from .doctor_checks import check_config, check_providers, check_store
from .doctor_extensions import check_labextension, check_server_extension
from .doctor_report import Check, Report, format_report
from .kernel_client import LoadedConfig
from .settings import CONFIG_SECTION, EngineSettings

__all__ = ["Check", "Report", "format_report", "run"]


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
