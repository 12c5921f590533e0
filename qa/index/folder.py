"""The index folder's safety: one builder at a time, and a swap that never leaves half an index.

A build or update writes a whole new index into a temporary sibling folder
and swaps it into place in one atomic rename, so a process killed at any
point leaves the previous index as it was; whatever opens the index next
clears what a killed one left behind. Builders of one index take a lock kept
outside the work tree (see :func:`lock_path`); readers take none. The lock
folder also keeps, per index, a note of its last failed update
(:class:`FailedUpdate`), so that later processes need not try it again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from qa.errors import IndexStoreError, IndexWriteError

MANIFEST = "manifest.json"
# A failed-update note is a few hundred bytes; anything longer is not one of ours.
_NOTE_MAX_BYTES = 64 * 1024


@contextlib.contextmanager
def locked(index_dir: Path, note: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the lock of ``index_dir``, once it may be replaced and killed builds' leftovers are cleared.

    A block that ends without an error leaves the index current, so the note
    of an earlier failed update is dropped then.

    Raises:
        IndexStoreError: the folder is not an index.
        IndexWriteError: the folder or its lock cannot be created, or the lock is unsafe.
    """
    try:
        index_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexWriteError(f"cannot create the index folder {index_dir}: {exc.strerror}") from exc
    with build_lock(index_dir, note):
        check_replaceable(index_dir)
        clear_leftovers(index_dir)
        yield
        forget_failed_update(index_dir)


@contextlib.contextmanager
def staged(index_dir: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``index_dir``; swap it into place if the block succeeds.

    Called under :func:`locked`. Whatever happens, the temporary folder is gone afterwards.

    Raises:
        IndexWriteError: the new index cannot be written.
    """
    tmp = index_dir.parent / f".{index_dir.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        yield tmp
        swap_into_place(tmp, index_dir)
    # A full disk or a refused write reaches here as whatever the writer raises:
    # OSError (files, numpy), sqlite3.Error ("database or disk is full"),
    # RuntimeError (FAISS) or ValueError (tantivy: "An IO error occurred").
    except (OSError, sqlite3.Error, RuntimeError, ValueError) as exc:
        raise IndexWriteError(f"cannot write the index to {index_dir}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lock_folder() -> Path:
    """This user's folder of build locks and failed-update notes: ``newsqa-locks-UID`` in the runtime folder.

    The runtime folder is ``$XDG_RUNTIME_DIR``, or the temporary folder where
    that is not set. It is made mode 0700 and used only while it is this
    user's, a real folder, and writable by no one else (:func:`_private_folder`).
    """
    return Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"newsqa-locks-{os.getuid()}"


def lock_path(index_dir: Path) -> Path:
    """The lock file that builds of ``index_dir`` share.

    It cannot live in the index folder, which a build replaces whole, nor
    beside it, where it would litter the work tree (``index/`` sits in the
    repository), nor need the index's place to be writable. So it lives in
    :func:`lock_folder`, named after the index's absolute path, and is
    removed when the build or update that took it ends.
    """
    return lock_folder() / f"{_key(index_dir)}.lock"


def _key(index_dir: Path) -> str:
    """The name an index's lock and note share: its folder's name and a hash of its absolute path."""
    resolved = str(Path(index_dir).resolve())
    return f"{Path(resolved).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:16]}"


def check_replaceable(index_dir: Path) -> None:
    """Refuse to build over anything but an index or an empty folder.

    A build replaces the whole folder, so ``--index data/corpus`` given by
    mistake would otherwise delete the corpus.
    """
    if not index_dir.exists() and not index_dir.is_symlink():
        return
    if not index_dir.is_dir():
        raise IndexStoreError(f"{index_dir} is a file, not an index folder")
    if (index_dir / MANIFEST).exists() or not any(index_dir.iterdir()):
        return
    raise IndexStoreError(
        f"{index_dir} holds other files and no {MANIFEST}, so it is not a newsqa index and is "
        "left alone; give --index a new or empty folder"
    )


def tidy_leftovers(index_dir: Path) -> None:
    """Clear what killed builds of ``index_dir`` left beside it, if no build is running now.

    Any command that opens an index calls this, so a killed build leaves no
    ``.index.building-*`` folder in the work tree until the next build. The
    lock is only tried: while another process builds, its folder is in use
    and is left alone; where no safe lock can be had (an unsafe lock folder),
    they are left to the next build, which says why. The lock file is gone
    again afterwards.
    """
    if not _leftovers(index_dir):
        return
    try:
        with _holding(index_dir, wait=False, note=None) as held:
            if held:
                clear_leftovers(index_dir)
    except IndexWriteError:  # no safe lock: leave them to the next build, which says why
        return


def clear_leftovers(index_dir: Path) -> None:
    """Remove the temporary folders of builds that were killed (called under the lock)."""
    for folder in _leftovers(index_dir):
        shutil.rmtree(folder, ignore_errors=True)


def _leftovers(index_dir: Path) -> list[Path]:
    """The temporary folders builds and swaps of ``index_dir`` make beside it (see :func:`staged`)."""
    return [
        folder
        for pattern in (f".{index_dir.name}.building-*", f".{index_dir.name}.old-*")
        for folder in index_dir.parent.glob(pattern)
    ]


_RENAME_EXCHANGE = 2  # linux/fs.h


def swap_into_place(tmp: Path, index_dir: Path) -> None:
    """Put ``tmp`` at ``index_dir`` so that a reader always finds a whole index there.

    On Linux renameat2(RENAME_EXCHANGE) swaps the two folders in one step; a
    kill right after it leaves the old index in ``tmp``, which the next build
    clears. Elsewhere two renames leave a moment with no index, after which
    the next start rebuilds.
    """
    if not index_dir.exists():
        os.replace(tmp, index_dir)
        return
    if _exchange(tmp, index_dir):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = index_dir.parent / f".{index_dir.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(index_dir, old)
    os.replace(tmp, index_dir)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    renameat2 = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None) if libc_name else None
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):  # old kernel or a file system without exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextlib.contextmanager
def build_lock(index_dir: Path, note: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the build lock of ``index_dir`` for the block, waiting while another process holds it.

    ``note`` is told whose lock it waits for. The lock file is removed when
    the block ends, so lock files do not pile up.

    Raises:
        IndexWriteError: the lock cannot be created, or its folder or file is unsafe.
    """
    with _holding(index_dir, wait=True, note=note):
        yield


@contextlib.contextmanager
def _holding(index_dir: Path, wait: bool, note: Callable[[str], None] | None) -> Iterator[bool]:
    """Hold the lock of ``index_dir`` for the block (False: another process held it and ``wait`` was False).

    The holder unlinks the lock file before it lets go of it. Whoever waited
    on that file then holds a lock nobody else will ever take, so it checks
    that the path still names the file it locked, and starts over if not
    (:func:`_take`): two holders never overlap.
    """
    path = lock_path(index_dir)
    with _private_folder() as folder:
        fd = _take(folder, index_dir, wait, note)
        if fd is None:
            yield False
            return
        try:
            yield True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path.name, dir_fd=folder)
            os.close(fd)  # releases the lock


def _take(folder: int, index_dir: Path, wait: bool, note: Callable[[str], None] | None) -> int | None:
    """Lock ``index_dir``'s lock file in the open ``folder``; its descriptor (None: held, not ``wait``)."""
    path = lock_path(index_dir)
    told = False
    while True:
        fd = _open_lock_file(folder, path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    return None
                if note is not None and not told:
                    note(f"another process is building {index_dir} (lock {path}); waiting for it to finish")
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                named = os.stat(path.name, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                named = None
            held = os.fstat(fd)
            if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it: the lock is the file now at the path


def _open_lock_file(folder: int, path: Path) -> int:
    """Open (or create) the lock file ``path`` in the open ``folder``: never through a link nor truncated."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path.name, flags, 0o600, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IndexWriteError(
                f"the build lock {path} is a symbolic link, which a lock never follows; remove it"
            ) from exc
        raise IndexWriteError(f"cannot create the build lock {path}: {exc.strerror}") from exc
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.getuid():
        os.close(fd)
        raise IndexWriteError(f"the build lock {path} is not a plain file of this user's; remove it")
    return fd


@contextlib.contextmanager
def _private_folder() -> Iterator[int]:
    """The lock folder, open, made mode 0700 if missing; refused unless it is this user's alone.

    In a shared temporary folder another local user could make it first, or
    put a link there, and so choose what a lock or a note opens. Files in it
    are opened relative to this descriptor, so the folder checked is the one
    used.

    Raises:
        IndexWriteError: it cannot be made, or it is a link, not a folder, another
            user's, or writable by group or others.
    """
    folder = lock_folder()
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        what = "a symbolic link" if folder.is_symlink() else "not a folder" if folder.exists() else None
        if what is None:
            raise IndexWriteError(f"cannot create the lock folder {folder}: {exc.strerror}") from exc
        raise IndexWriteError(f"the lock folder {folder} is {what}; remove it") from exc
    try:
        found = os.fstat(fd)
        if found.st_uid != os.getuid():
            raise IndexWriteError(
                f"the lock folder {folder} belongs to user {found.st_uid}, not to this user "
                f"({os.getuid()}); remove it"
            )
        if found.st_mode & 0o022:
            raise IndexWriteError(
                f"the lock folder {folder} is writable by others (mode {stat.S_IMODE(found.st_mode):o}); "
                "remove it or chmod 700 it"
            )
        yield fd
    finally:
        os.close(fd)


@dataclass(frozen=True)
class FailedUpdate:
    """An update of an index that could not be written: for which corpus, why, and when.

    ``signature`` is the corpus signature (qa.corpus.folder.corpus_signature)
    the update was for; ``time`` is seconds since the epoch.
    """

    signature: str
    error: str
    time: float


def record_failed_update(index_dir: Path, failed: FailedUpdate) -> None:
    """Keep ``failed`` beside the index's lock, where later processes find it; best effort.

    Written whole or not at all (a new file renamed over the old). Where the
    lock folder cannot be written either (the same full disk), nothing is
    kept and the next process tries the update again.
    """
    name = f"{_key(index_dir)}.failed"
    partial = f".{name}.{uuid.uuid4().hex[:8]}"
    with contextlib.suppress(OSError, IndexWriteError), _private_folder() as folder:
        try:
            fd = os.open(
                partial,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=folder,
            )
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(asdict(failed)).encode("utf-8"))
            os.replace(partial, name, src_dir_fd=folder, dst_dir_fd=folder)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial, dir_fd=folder)


def failed_update(index_dir: Path) -> FailedUpdate | None:
    """The last failed update of ``index_dir`` not followed by a successful one; None when there is none."""
    try:
        with _private_folder() as folder:
            fd = os.open(
                f"{_key(index_dir)}.failed",
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=folder,
            )
            with os.fdopen(fd, "rb") as handle:
                found = json.loads(handle.read(_NOTE_MAX_BYTES))
        return FailedUpdate(str(found["signature"]), str(found["error"]), float(found["time"]))
    except (OSError, IndexWriteError, ValueError, TypeError, KeyError):
        return None  # none, or unreadable: the update is simply tried


def forget_failed_update(index_dir: Path) -> None:
    """Drop the note of a failed update of ``index_dir`` (it has just been brought up to date)."""
    with contextlib.suppress(OSError, IndexWriteError), _private_folder() as folder:
        os.unlink(f"{_key(index_dir)}.failed", dir_fd=folder)
