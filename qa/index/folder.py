"""The index folder's safety: one builder at a time, and a swap that never leaves half an index.

A build or update writes a whole new index into a temporary sibling folder
and swaps it into place in one atomic rename, so a process killed at any
point leaves the previous index as it was; whatever opens the index next
clears what a killed one left behind. Builders of one index take a lock kept
outside the work tree (see :func:`lock_path`).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from qa.errors import IndexStoreError

MANIFEST = "manifest.json"


@contextlib.contextmanager
def locked(index_dir: Path, note: Callable[[str], None] | None) -> Iterator[None]:
    """Hold the lock of ``index_dir``, once it may be replaced and killed builds' leftovers are cleared.

    Raises:
        IndexStoreError: the folder is not an index, or it or its lock cannot be created.
    """
    try:
        index_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStoreError(f"cannot create the index folder {index_dir}: {exc.strerror}") from exc
    with build_lock(index_dir, note):
        check_replaceable(index_dir)
        clear_leftovers(index_dir)
        yield


@contextlib.contextmanager
def staged(index_dir: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``index_dir``; swap it into place if the block succeeds.

    Called under :func:`locked`. Whatever happens, the temporary folder is gone afterwards.

    Raises:
        IndexStoreError: the new index cannot be written.
    """
    tmp = index_dir.parent / f".{index_dir.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        yield tmp
        swap_into_place(tmp, index_dir)
    except OSError as exc:
        raise IndexStoreError(f"cannot write the index to {index_dir}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def lock_path(index_dir: Path) -> Path:
    """The lock file that builds of ``index_dir`` share.

    It cannot live in the index folder, which a build replaces whole, nor
    beside it, where it would litter the work tree (``index/`` sits in the
    repository). So it lives in the user's runtime or temporary folder, named
    after the index's absolute path.
    """
    resolved = str(Path(index_dir).resolve())
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"newsqa-locks-{os.getuid()}"
    key = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    return base / f"{Path(resolved).name}-{key}.lock"


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
    and is left alone; where the lock cannot be taken at all (a read-only
    place), there is nothing this process could clear either.
    """
    pattern = (f".{index_dir.name}.building-*", f".{index_dir.name}.old-*")
    if not any(any(index_dir.parent.glob(p)) for p in pattern):
        return
    try:
        handle = _open_lock(index_dir)
    except OSError:
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            clear_leftovers(index_dir)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clear_leftovers(index_dir: Path) -> None:
    """Remove the temporary folders of builds that were killed (called under the lock)."""
    for pattern in (f".{index_dir.name}.building-*", f".{index_dir.name}.old-*"):
        for folder in index_dir.parent.glob(pattern):
            shutil.rmtree(folder, ignore_errors=True)


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
    path = lock_path(index_dir)
    try:
        handle = _open_lock(index_dir)
    except OSError as exc:
        raise IndexStoreError(f"cannot create the build lock {path}: {exc.strerror}") from exc
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if note is not None:
                note(f"another process is building {index_dir} (lock {path}); waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _open_lock(index_dir: Path) -> IO[str]:
    """The lock file of ``index_dir``, opened (and its folder made) for flock."""
    path = lock_path(index_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path.open("w")
