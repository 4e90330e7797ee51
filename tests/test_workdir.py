"""Notebook paths resolve to folders inside the server root, and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_assistant.errors import BadRequest
from jupyter_assistant.workdir import notebook_key_for_file, resolve_notebook


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "analysis").mkdir(parents=True)
    (root / "analysis" / "q3.ipynb").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.ipynb").write_text("{}")
    os.symlink(tmp_path / "outside", root / "escape")
    os.symlink(tmp_path / "outside" / "secret.ipynb", root / "analysis" / "link.ipynb")
    os.symlink(root / "analysis", root / "inside-link")
    return root


def test_notebook_folder_is_the_working_dir(root: Path) -> None:
    location = resolve_notebook(root, "analysis/q3.ipynb")
    assert location.api_path == "analysis/q3.ipynb"
    assert location.working_dir == str((root / "analysis").resolve())
    assert location.notebook_key == str((root / "analysis" / "q3.ipynb").resolve())


def test_top_level_notebook_runs_in_the_root(root: Path) -> None:
    assert resolve_notebook(root, "top.ipynb").working_dir == str(root.resolve())


def test_redundant_separators_are_normalized(root: Path) -> None:
    assert resolve_notebook(root, "analysis//./q3.ipynb").api_path == "analysis/q3.ipynb"


def test_symlink_inside_the_root_is_fine_and_keys_by_the_real_file(root: Path) -> None:
    location = resolve_notebook(root, "inside-link/q3.ipynb")
    assert location.notebook_key == resolve_notebook(root, "analysis/q3.ipynb").notebook_key


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.ipynb",
        "analysis/../../outside/secret.ipynb",
        "/etc/passwd",
        "~/x.ipynb",
        "escape/secret.ipynb",  # a folder symlink that leads out
        "analysis/link.ipynb",  # a notebook symlink that leads out
        "analysis/q3.ipynb\x00.txt",
        "analysis\\..\\..\\outside\\secret.ipynb",
        "",
        ".",
        "missing-folder/nb.ipynb",
    ],
)
def test_escapes_and_bad_paths_are_refused(root: Path, path: str) -> None:
    with pytest.raises(BadRequest):
        resolve_notebook(root, path)


def test_kernel_and_server_agree_on_the_key(root: Path) -> None:
    # A kernel knows its notebook as an absolute path (JPY_SESSION_NAME), maybe via a symlink.
    via_link = root / "inside-link" / "q3.ipynb"
    assert (
        notebook_key_for_file(via_link) == resolve_notebook(root, "analysis/q3.ipynb").notebook_key
    )
