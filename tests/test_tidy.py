"""Leaves no mess: a first index in a fresh clone, and a quiet one-question run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(clone: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=clone, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _fresh_clone(folder: Path) -> Path:
    """The work tree's tracked files, as they are now, in a new repository with all of them staged."""
    folder.mkdir()
    for name in _git(ROOT, "ls-files", "-z").split("\0"):
        if name and (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    return folder


def test_first_index_and_question_in_a_fresh_clone_leave_git_status_clean_and_quiet(tmp_path: Path) -> None:
    clone = _fresh_clone(tmp_path / "clone")
    before = _git(clone, "status", "--porcelain", "--untracked-files=all", "--ignored=no")

    def qa(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qa", *args], cwd=clone, capture_output=True, text=True, timeout=300
        )

    indexed = qa("index")
    assert indexed.returncode == 0, indexed.stderr
    assert (clone / "index" / "manifest.json").is_file()
    asked = qa("ask", "Who is the director of Auckland Pride?")
    assert asked.returncode == 0, asked.stderr
    assert "Max Tweedie" in asked.stdout
    # Only notices that matter: no third-party loading bars or load reports.
    assert asked.stderr == "", asked.stderr
    assert "Loading weights" not in indexed.stderr
    assert _git(clone, "status", "--porcelain", "--untracked-files=all", "--ignored=no") == before
