"""Measure 1 for the peers: server start-up with jupyterlab + a peer vs jupyterlab alone.

Issue 6 quotes "jupyter-ai 3.2 adds about 70%, notebook-intelligence 6.2 about 28%" to the start-up
of ``jupyter server``. This measures them the way ``bench_startup.py`` measures us, so that the
figures can stand side by side: each peer is installed with the jupyterlab of this environment in
a virtualenv of its own (``~/.cache/ja-bench-peers/<peer>``, reused when present), and in that
venv a server with the peer's server extensions enabled is timed against the same venv with them
disabled, from spawn until ``GET /api/status`` answers, in interleaved (ABBA) pairs.

"The peer's server extensions" are the ones its venv enables that a venv with jupyterlab alone
(``<venv-dir>/jupyterlab``) does not: the package may bring several (jupyter-ai 3 does). The other
extensions jupyterlab brings are off in both servers, as in ``bench_startup.py``. Optional: it
installs packages, so ``run_all.py`` runs it only with ``--peers``. A peer that cannot be
installed is reported as a note, without a figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

from _common import Result, Server, interleave, print_results, workspace
from bench_startup import OTHERS_OFF

DEFAULT_VENV_DIR = Path.home() / ".cache" / "ja-bench-peers"
REFERENCE = "jupyterlab"  # the venv with jupyterlab alone, against which a peer's are told apart
TARGET = "- (peer, for comparison)"
MARKER = "ja-bench-requirements.json"  # written once pip install succeeded


@dataclass(frozen=True)
class Peer:
    name: str  # the venv's folder and the row's key
    requirement: str  # what pip installs next to jupyterlab
    distribution: str  # whose version the row names
    quoted: str  # what issue 6 quotes


PEERS = {
    peer.name: peer
    for peer in (
        Peer("jupyter-ai", "jupyter-ai==3.2.*", "jupyter-ai", "about +70%"),
        Peer(
            "notebook-intelligence",
            "notebook-intelligence==6.2.*",
            "notebook-intelligence",
            "about +28%",
        ),
    )
}

# Run in a venv's interpreter: the server extensions its config path enables (as `jupyter server
# extension list` shows them), the private JUPYTER_CONFIG_DIR of the servers included.
ENABLED_CODE = """
import json
from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager
# The first folder of the path wins: read it last.
manager = ExtensionConfigManager(read_config_path=list(reversed(jupyter_config_path())))
print(json.dumps(sorted(k for k, v in manager.get_jpserver_extensions().items() if v)))
"""

VERSIONS_CODE = """
import json, platform, sys
from importlib.metadata import version, PackageNotFoundError
out = {"python": platform.python_version()}
for name in sys.argv[1:]:
    try:
        out[name] = version(name)
    except PackageNotFoundError:
        out[name] = "not installed"
print(json.dumps(out))
"""


class InstallError(RuntimeError):
    pass


# -- the virtualenvs -----------------------------------------------------------------------------


def lab_requirement() -> str:
    """The jupyterlab of this environment, so that every venv runs the same one as measure 1."""
    return f"jupyterlab=={version('jupyterlab')}"


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def venv_env(folder: Path, **extra: str) -> dict[str, str]:
    """This process's environment pointed at the venv: its ``bin`` first on PATH, and nothing that
    would import packages from elsewhere (``PYTHONPATH`` names this repo's copy, for instance)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env["PATH"] = f"{folder / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(folder)
    env.update(extra)
    return env


def ensure_venv(folder: Path, requirements: list[str]) -> Path:
    """A venv at ``folder`` holding ``requirements``: created with this interpreter
    (``python -m venv``) and ``pip install``-ed, or reused as it is when an earlier install of
    the same requirements succeeded there. Raises InstallError with pip's last lines."""
    python = venv_python(folder)
    marker = folder / MARKER
    try:
        if python.exists() and json.loads(marker.read_text()) == requirements:
            return python
    except (OSError, ValueError):
        pass
    print(f"installing {' '.join(requirements)} in {folder} ...", file=sys.stderr, flush=True)
    marker.unlink(missing_ok=True)
    steps = [[sys.executable, "-m", "venv", str(folder)]] if not python.exists() else []
    steps.append(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *requirements]
    )
    for argv in steps:
        done = subprocess.run(
            argv, env=venv_env(folder), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            lines = [
                line
                for line in (done.stdout + done.stderr).splitlines()
                if line.strip() and "is ignored: it is neither a file nor a directory" not in line
            ]
            raise InstallError(f"`{' '.join(argv[2:4])}` failed: " + " | ".join(lines[-6:]))
    marker.write_text(json.dumps(requirements))
    return python


def venv_json(folder: Path, home: Path, code: str, *args: str) -> Any:
    done = subprocess.run(
        [str(venv_python(folder)), "-c", code, *args],
        env=venv_env(folder, JUPYTER_CONFIG_DIR=str(home / "no-config"), HOME=str(home)),
        cwd=home,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def enabled_extensions(folder: Path, home: Path) -> set[str]:
    return set(venv_json(folder, home, ENABLED_CODE))


# -- a server in another venv ----------------------------------------------------------------


class VenvServer(Server):
    """``_common.Server`` run by another venv's interpreter and environment, with HOME in its
    private folder too: notebook-intelligence reads and
    writes ``~/.jupyter/nbi``, and a user's real settings there would make the runs differ."""

    def __init__(self, home: Path, venv: Path, *, config: dict[str, Any]) -> None:
        super().__init__(home, config=config)
        self.venv = venv
        self.python = str(venv_python(venv))
        # Ours, set by Server for jupyter_assistant, which is not installed in a peer's venv.
        self.config.pop("AssistantExtension", None)
        self.config.pop("ClaudeCodeProvider", None)

    def environment(self) -> dict[str, str]:
        """The venv's environment, with this server's private Jupyter folders and HOME."""
        return venv_env(self.venv, **self.jupyter_env(), HOME=str(self.home))


def start_once(home: Path, venv: Path, extensions: dict[str, bool]) -> tuple[float, str]:
    """One start-up: its seconds, and the server's log (read once it has stopped)."""
    server = VenvServer(home, venv, config={"ServerApp": {"jpserver_extensions": extensions}})
    try:
        seconds = server.start()
    finally:
        server.stop()
    return seconds, server.log.read_text(errors="replace")


def load_problems(log: str, expected: set[str], unexpected: set[str]) -> list[str]:
    """What the log says went wrong: an extension that should have loaded and did not (its
    cost would be missing from the figure), or one that should have stayed off and loaded."""
    problems = [
        f"{name} did not load"
        for name in sorted(expected)
        if f"{name} | extension was successfully loaded." not in log
    ]
    problems += [
        f"{name} loaded though disabled"
        for name in sorted(unexpected)
        if f"{name} | extension was successfully loaded." in log
    ]
    problems += [
        line.strip()[:300]
        for line in log.splitlines()
        if "| extension failed" in line
        or "| error adding extension" in line
        or "| error linking extension" in line
    ]
    return problems


# -- the measure -----------------------------------------------------------------------------


def note_row(peer: Peer, why: str) -> Result:
    """A row without a figure: the peer was not measured, and says why."""
    return Result(
        f"1p-{peer.name}",
        f"server start-up, jupyterlab + {peer.requirement} vs jupyterlab: not measured",
        cast(float, None),  # no figure rather than a made-up one: the table shows "-"
        "s",
        target=TARGET,
        met=None,
        notes=[why],
    )


def measure_peer(peer: Peer, venv_dir: Path, pairs: int) -> Result:
    lab = lab_requirement()
    try:
        reference = venv_dir / REFERENCE
        ensure_venv(reference, [lab])
        venv = venv_dir / peer.name
        ensure_venv(venv, [lab, peer.requirement])
    except InstallError as e:
        return note_row(peer, f"could not be installed for Python {platform.python_version()}: {e}")

    with workspace(f"peer-{peer.name}") as home:
        lab_alone = enabled_extensions(reference, home)
        in_venv = enabled_extensions(venv, home)
        brought = in_venv - lab_alone
        if not brought:
            return note_row(
                peer,
                f"its venv enables no server extension beyond jupyterlab's: "
                f"{', '.join(sorted(in_venv))}",
            )
        if "jupyterlab" not in in_venv:
            return note_row(peer, "its venv does not enable jupyterlab")
        # Off in both: what jupyterlab brings besides itself (as in bench_startup.py).
        others_off = (set(OTHERS_OFF) | lab_alone | in_venv) - brought - {"jupyterlab"}
        common = {"jupyterlab": True, **dict.fromkeys(sorted(others_off), False)}
        on = {**common, **dict.fromkeys(sorted(brought), True)}
        off = {**common, **dict.fromkeys(sorted(brought), False)}
        versions = venv_json(
            venv, home, VERSIONS_CODE, peer.distribution, "jupyterlab", "jupyter_server"
        )

        with_home, without_home = home / "with", home / "without"
        # Untimed, warms the page cache and writes the data folders; its logs prove that the
        # peer's extensions load in the one and stay off in the other.
        _, with_log = start_once(with_home, venv, on)
        _, without_log = start_once(without_home, venv, off)
        problems = load_problems(with_log, brought | {"jupyterlab"}, set())
        problems += load_problems(without_log, {"jupyterlab"}, brought)
        if problems:
            return note_row(
                peer, "not timed, the warm-up servers' logs say: " + "; ".join(problems)
            )

        with_times, lab_times = interleave(
            pairs,
            lambda: start_once(with_home, venv, on)[0],
            lambda: start_once(without_home, venv, off)[0],
        )

    figure = statistics.median(with_times)
    baseline = statistics.median(lab_times)
    overhead = figure / baseline - 1
    pair_ratios = [a / b for a, b in zip(with_times, lab_times, strict=True)]
    ours = version("jupyter_server")
    server_note = (
        f"jupyter_server {versions['jupyter_server']}"
        if versions["jupyter_server"] == ours
        else f"jupyter_server {versions['jupyter_server']} (measure 1 here runs {ours})"
    )
    return Result(
        f"1p-{peer.name}",
        f"server start-up until /api/status answers (jupyterlab + {peer.name} "
        f"{versions[peer.distribution]} vs jupyterlab, in its own venv)",
        figure,
        "s",
        baseline,
        compare=f"{overhead * 100:+.1f}% ({(figure - baseline) * 1000:+.0f} ms)",
        target=TARGET,
        met=None,
        notes=[
            f"{pairs} interleaved pairs; median of per-pair ratios "
            f"{statistics.median(pair_ratios):.3f}; issue 6 quotes {peer.quoted}",
            f"with: {min(with_times):.2f}..{max(with_times):.2f} s; "
            f"without: {min(lab_times):.2f}..{max(lab_times):.2f} s",
            f"disabled for the baseline (the server extensions {peer.requirement} brings, vs a "
            f"venv with jupyterlab alone): {', '.join(sorted(brought))}",
            f"off in both: {', '.join(sorted(others_off))}",
            f"venv {venv}: Python {versions['python']}, jupyterlab {versions['jupyterlab']}, "
            + server_note,
        ],
    )


def run(
    quick: bool = False,
    venv_dir: Path | None = None,
    pairs: int | None = None,
    only: list[str] | None = None,
) -> list[Result]:
    folder = venv_dir or DEFAULT_VENV_DIR
    folder.mkdir(parents=True, exist_ok=True)
    count = pairs or (2 if quick else 16)
    results = []
    for name in only or list(PEERS):
        try:
            results.append(measure_peer(PEERS[name], folder, count))
        except (RuntimeError, subprocess.CalledProcessError) as e:
            # A server that did not start, a venv that could not be queried: no figure.
            detail = getattr(e, "stderr", None) or str(e)
            results.append(note_row(PEERS[name], f"failed: {detail[-1500:]}"))
    return results


def install_only(venv_dir: Path | None, only: list[str] | None) -> int:
    folder = venv_dir or DEFAULT_VENV_DIR
    folder.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in [REFERENCE, *(only or list(PEERS))]:
        requirements = [lab_requirement()] + ([PEERS[name].requirement] if name in PEERS else [])
        try:
            ensure_venv(folder / name, requirements)
            print(f"{name}: {folder / name} ready")
        except InstallError as e:
            print(f"{name}: {e}")
            failed += 1
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (2 pairs)")
    parser.add_argument(
        "--venv-dir",
        type=Path,
        help=f"where the peers' virtualenvs are made and reused (default {DEFAULT_VENV_DIR})",
    )
    parser.add_argument("--pairs", type=int, help="interleaved pairs per peer (default 16)")
    parser.add_argument(
        "--peer", action="append", choices=list(PEERS), help="only this peer (repeatable)"
    )
    parser.add_argument(
        "--install-only", action="store_true", help="make the venvs, measure nothing"
    )
    args = parser.parse_args()
    if args.install_only:
        return install_only(args.venv_dir, args.peer)
    print_results(run(args.quick, args.venv_dir, args.pairs, args.peer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
