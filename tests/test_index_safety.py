"""Reading never needs writing, a failed update costs nothing, and the build lock cannot be turned on us.

Real indexes of a two-article corpus (real model, FAISS and tantivy), in
temporary folders. A read-only place is a read-only bind mount and a full
disk a small tmpfs filled up: both need root (CAP_SYS_ADMIN), which tests and
CI have; elsewhere those tests are skipped with the reason. Each test points
``XDG_RUNTIME_DIR`` at a folder of its own, so its lock folder is its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import two_article_corpus

from qa.engine import Engine
from qa.errors import IndexStoreError
from qa.index.current import RETRY_BACKOFF_SECONDS, retry_due
from qa.index.folder import (
    FailedUpdate,
    build_lock,
    failed_update,
    lock_folder,
    lock_path,
    locked,
    record_failed_update,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
DIRECTOR = "Who is the director of Auckland Pride?"
# Answered only by the article the tests add (000_...): its first paragraphs.
ADDED = "000_3aa418e33fff14e7.txt"
ADDED_QUESTION = "Where had Joe Perrone's partner been waiting to pay for food?"


def _add_article(corpus: Path) -> None:
    """Add the bundled article ``ADDED`` and its sources.csv row to ``corpus``."""
    shutil.copy(CORPUS / ADDED, corpus / ADDED)
    rows = (CORPUS / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    with (corpus / "sources.csv").open("a", encoding="utf-8") as out:
        out.write(next(r for r in rows if r.startswith(ADDED)))


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus, index): a complete index of the small corpus, never modified (copy it to change it)."""
    folder = tmp_path_factory.mktemp("built")
    corpus = two_article_corpus(folder / "corpus")
    Engine.open(corpus, folder / "index", progress=False, load_reader=False)
    return corpus, folder / "index"


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime folder of this test's own: the lock folder goes in it, here and in the commands run."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    return folder


def _qa(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``qa`` as a user does (the environment, XDG_RUNTIME_DIR included, is this process's)."""
    return subprocess.run(
        [sys.executable, "-m", "qa", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _mount(*args: str) -> str:
    """Run mount; the reason it failed, or "" when it worked."""
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    return "" if done.returncode == 0 else f"mount {' '.join(args)} failed: {done.stderr.strip()}"


@contextlib.contextmanager
def _mounted(where: Path, *args: str) -> Iterator[None]:
    """``mount *args where`` for the block (the test is skipped, with the reason, where it cannot)."""
    if os.geteuid() != 0:
        pytest.skip("mounting needs root (CAP_SYS_ADMIN)")
    failed = _mount(*args, str(where))
    if failed:
        pytest.skip(failed)
    try:
        yield
    finally:
        # Lazy: an engine of the test may still map files under it until it is collected.
        subprocess.run(["umount", "--lazy", str(where)], check=True)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(folder, view): an empty writable folder and a read-only view of it (a read-only bind mount)."""
    folder, view = tmp_path / "rw", tmp_path / "ro"
    folder.mkdir()
    view.mkdir()
    with _mounted(view, "--bind", str(folder)):
        failed = _mount("-o", "remount,ro,bind", str(view))
        if failed:
            pytest.skip(failed)
        with pytest.raises(OSError):  # root ignores file modes; a read-only mount it cannot ignore
            (view / "probe").touch()
        yield folder, view


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a disk that the tests can fill."""
    disk = tmp_path / "disk"
    disk.mkdir()
    with _mounted(disk, "-t", "tmpfs", "-o", "size=2m", "tmpfs"):
        yield disk


def _fill(disk: Path) -> Path:
    """Fill ``disk`` up with one file; that file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


# --- reading never needs writing ---------------------------------------------------------------------


def test_a_current_index_on_a_read_only_mount_answers(
    built: tuple[Path, Path], read_only: tuple[Path, Path], runtime: Path
) -> None:
    """Opened read-only: not "damaged", no rebuild, an answer with exit 0."""
    corpus, index = built
    folder, view = read_only
    shutil.copytree(index, folder / "index")

    done = _qa("ask", DIRECTOR, "--corpus", str(corpus), "--index", str(view / "index"))
    assert done.returncode == 0, done.stderr
    assert "Max Tweedie" in done.stdout
    assert not any(word in done.stderr for word in ("damaged", "rebuild", "building", "update")), done.stderr

    engine = Engine.open(corpus, view / "index", progress=False)
    assert "Max Tweedie" in engine.ask(DIRECTOR).answers[0].text
    assert not any(word in n for n in engine.notices for word in ("damaged", "rebuild", "update"))


def test_a_changed_corpus_on_a_read_only_mount_answers_from_the_old_index(
    built: tuple[Path, Path], read_only: tuple[Path, Path], runtime: Path, tmp_path: Path
) -> None:
    """The update cannot be written: the old index answers, with a notice, and exit 0."""
    corpus, index = tmp_path / "corpus", built[1]
    shutil.copytree(built[0], corpus)
    _add_article(corpus)
    folder, view = read_only
    shutil.copytree(index, folder / "index")

    done = _qa("ask", DIRECTOR, "--corpus", str(corpus), "--index", str(view / "index"))
    assert done.returncode == 0, done.stderr
    assert "Max Tweedie" in done.stdout
    assert "could not update" in done.stderr and "old index" in done.stderr, done.stderr
    assert "Read-only file system" in done.stderr


def test_a_current_index_opens_while_a_build_holds_its_lock(built: tuple[Path, Path], runtime: Path) -> None:
    """Loading takes no lock: a build running (holding the lock) does not hold up a reader."""
    corpus, index = built
    opened: list[Engine] = []
    with build_lock(index, None):
        reader = threading.Thread(
            target=lambda: opened.append(Engine.open(corpus, index, progress=False, load_reader=False))
        )
        reader.start()
        reader.join(timeout=120)
        assert opened, "opening a current index waited for the build lock"
    assert opened[0].manifest["counts"]["articles"] == 2


# --- a failed update leaves a note; questions use the old index until qa index --------------------------


def test_a_failed_update_on_a_full_disk_answers_from_the_old_index_until_qa_index(
    built: tuple[Path, Path], small_disk: Path, runtime: Path, tmp_path: Path
) -> None:
    corpus, index = tmp_path / "corpus", small_disk / "index"
    shutil.copytree(built[0], corpus)
    shutil.copytree(built[1], index)
    filler = _fill(small_disk)
    before = _digests(index)
    _add_article(corpus)

    first = _qa("ask", DIRECTOR, "--corpus", str(corpus), "--index", str(index))
    assert first.returncode == 0, first.stderr
    assert "Max Tweedie" in first.stdout
    assert "could not update" in first.stderr and "old index" in first.stderr, first.stderr
    assert _digests(index) == before, "the old index is left as it was"
    failed = failed_update(index)
    assert failed is not None and ("space" in failed.error or "full" in failed.error), failed

    # No retry: no embedding, no new failure, the note as it was.
    second = _qa("ask", DIRECTOR, "--corpus", str(corpus), "--index", str(index))
    assert second.returncode == 0, second.stderr
    assert "Max Tweedie" in second.stdout
    assert "out of date" in second.stderr and "qa index" in second.stderr, second.stderr
    assert "Embedding" not in second.stderr and "could not update" not in second.stderr, second.stderr
    assert failed_update(index) == failed

    # qa index retries at once, and says so when it fails again.
    retried = _qa("index", "--corpus", str(corpus), "--index", str(index))
    assert retried.returncode == 2, retried.stderr
    assert "cannot write the index" in retried.stderr
    again = failed_update(index)
    assert again is not None and again.time > failed.time
    assert _digests(index) == before

    filler.unlink()
    fixed = _qa("index", "--corpus", str(corpus), "--index", str(index))
    assert fixed.returncode == 0, fixed.stderr
    assert "3 articles" in fixed.stdout
    assert failed_update(index) is None
    answered = _qa("ask", ADDED_QUESTION, "--json", "--corpus", str(corpus), "--index", str(index))
    assert answered.returncode == 0, answered.stderr
    assert ADDED.removesuffix(".txt") in answered.stdout
    assert "out of date" not in answered.stderr


def test_retry_waits_for_a_changed_corpus_and_the_back_off() -> None:
    """A failed update is retried on its own only once the corpus changed and the back-off passed."""
    failed = FailedUpdate(signature="s1", error="No space left on device", time=1000.0)
    assert not retry_due(failed, "s1", 1000.0 + 10 * RETRY_BACKOFF_SECONDS), (
        "same corpus: it would fail again"
    )
    assert not retry_due(failed, "s2", 1000.0 + RETRY_BACKOFF_SECONDS / 2), "changed, but within the back-off"
    assert retry_due(failed, "s2", 1000.0 + RETRY_BACKOFF_SECONDS)
    assert retry_due(None, "s1", 1000.0), "nothing failed: update"


def test_a_changed_corpus_after_the_back_off_is_retried(
    built: tuple[Path, Path], read_only: tuple[Path, Path], runtime: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(built[0], corpus)
    _add_article(corpus)
    folder, view = read_only
    shutil.copytree(built[1], folder / "index")
    index = view / "index"
    notices: list[str] = []
    Engine.open(corpus, index, progress=False, load_reader=False, note=notices.append)
    first = failed_update(index)
    assert first is not None and any("could not update" in n for n in notices), notices

    (corpus / ADDED).write_text(
        (corpus / ADDED).read_text(encoding="utf-8") + "\nEdited.\n", encoding="utf-8"
    )
    notices.clear()
    Engine.open(corpus, index, progress=False, load_reader=False, note=notices.append)
    assert failed_update(index) == first, "changed, but within the back-off: not retried"
    assert any("out of date" in n for n in notices), notices

    # As if the failure were older than the back-off.
    record_failed_update(index, replace(first, time=first.time - RETRY_BACKOFF_SECONDS - 1))
    notices.clear()
    Engine.open(corpus, index, progress=False, load_reader=False, note=notices.append)
    assert any("could not update" in n for n in notices), notices
    latest = failed_update(index)
    assert latest is not None and latest.time > first.time


# --- the build lock ----------------------------------------------------------------------------------


def test_a_symlinked_lock_file_is_refused_and_its_target_left_whole(
    built: tuple[Path, Path], runtime: Path, tmp_path: Path
) -> None:
    corpus, index = built[0], tmp_path / "index"
    shutil.copytree(built[1], index)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    lock = lock_path(index)
    lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock.symlink_to(victim)

    done = _qa("index", "--force", "--corpus", str(corpus), "--index", str(index))
    assert done.returncode == 2, done.stderr
    assert "symbolic link" in done.stderr and str(lock) in done.stderr, done.stderr
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert lock.is_symlink(), "what is not ours is left alone"


def _unsafe(folder: Path, how: str) -> None:
    if how == "world-writable":
        folder.mkdir(mode=0o700)
        folder.chmod(0o777)
    elif how == "group-writable":
        folder.mkdir(mode=0o700)
        folder.chmod(0o770)
    elif how == "another owner":
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user needs root")
        folder.mkdir(mode=0o700)
        os.chown(folder, 4242, 4242)
    else:  # a symlink to a folder that would pass every other check
        elsewhere = folder.parent / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        folder.symlink_to(elsewhere)


@pytest.mark.parametrize("how", ["world-writable", "group-writable", "another owner", "a symlink"])
def test_an_unsafe_lock_folder_is_refused(runtime: Path, tmp_path: Path, how: str) -> None:
    folder = lock_folder()
    assert folder.parent == runtime
    _unsafe(folder, how)
    with pytest.raises(IndexStoreError, match="lock folder") as refused, locked(tmp_path / "index", None):
        pass
    assert str(folder) in str(refused.value)
    assert not any((tmp_path / "elsewhere").glob("*")) if how == "a symlink" else not any(folder.iterdir())


def test_a_new_lock_folder_is_private(runtime: Path, tmp_path: Path) -> None:
    with locked(tmp_path / "index", None):
        stat = lock_folder().lstat()
        assert stat.st_mode & 0o777 == 0o700 and stat.st_uid == os.geteuid()


def test_lock_files_are_removed_when_builds_and_updates_finish(
    built: tuple[Path, Path], runtime: Path, tmp_path: Path
) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(built[0], corpus)
    Engine.open(corpus, index, progress=False, load_reader=False)
    assert list(lock_folder().iterdir()) == [], "the build's lock file is gone"

    _add_article(corpus)
    engine = Engine.open(corpus, index, progress=False, load_reader=False)
    assert engine.manifest["counts"]["articles"] == 3
    assert list(lock_folder().iterdir()) == [], "the update's lock file is gone"

    leftover = tmp_path / f".{index.name}.building-killed"
    leftover.mkdir()
    Engine.open(corpus, index, progress=False, load_reader=False)
    assert not leftover.exists()
    assert list(lock_folder().iterdir()) == [], "tidying up leaves no lock file either"


def test_builders_never_overlap_while_lock_files_come_and_go(runtime: Path, tmp_path: Path) -> None:
    """A waiter woken on a lock file its holder removed takes the lock again rather than running alongside."""
    index = tmp_path / "index"
    inside, most, turns = 0, 0, []
    guard = threading.Lock()

    def build(worker: int) -> None:
        nonlocal inside, most
        for turn in range(15):
            with build_lock(index, None):
                with guard:
                    inside += 1
                    most = max(most, inside)
                time.sleep(0.002)
                with guard:
                    inside -= 1
                    turns.append((worker, turn))

    workers = [threading.Thread(target=build, args=(w,)) for w in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert len(turns) == 6 * 15
    assert most == 1, f"{most} builders held the lock at once"
    assert list(lock_folder().iterdir()) == []


def test_the_lock_file_is_opened_without_truncating(runtime: Path, tmp_path: Path) -> None:
    """A lock file someone else holds open keeps its content (O_RDWR|O_CREAT, never O_TRUNC)."""
    index = tmp_path / "index"
    lock = lock_path(index)
    lock.parent.mkdir(mode=0o700)
    lock.write_text("held\n", encoding="utf-8")
    seen = []
    with build_lock(index, None):
        seen.append(lock.read_text(encoding="utf-8"))
    assert seen == ["held\n"]


def test_a_failed_build_still_removes_its_lock_file(runtime: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    with pytest.raises(RuntimeError), build_lock(index, None):
        raise RuntimeError("the build failed")
    assert list(lock_folder().iterdir()) == []
