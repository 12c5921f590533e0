"""An index that follows its folder: a newer index is loaded whole, then swapped in by one assignment.

A build or update never changes an index folder in place: it writes a new
one and swaps it in with one rename (qa.index.folder.swap_into_place), so a
new generation has a new ``manifest.json`` file. Telling one is a ``stat``
(inode, mtime, size), then, only when that changed, the manifest's own
sha256. A process that keeps an index open (``qa serve``, a program holding
an Engine) holds everything built on it in one immutable state ``S``; a
request takes the state once and uses only it, so it never sees half of two
indexes. Once the last request holding an old state ends, nothing refers to
it and its memory is freed.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from qa.errors import IndexStoreError, QAError
from qa.index.folder import MANIFEST
from qa.index.store import IndexData, load_index, read_manifest

Note = Callable[[str], None]
# A reload that failed is tried again after the check interval, then after
# twice as long each time it fails again, up to this: each try reads the
# damaged index's arrays, FAISS and tantivy files again (a second of CPU at
# 100k passages).
_MAX_RETRY_SECONDS = 60.0


class HoldsIndex(Protocol):
    """A state built on one loaded index."""

    @property
    def data(self) -> IndexData: ...


S = TypeVar("S", bound=HoldsIndex)


@dataclass(frozen=True)
class Generation:
    """Which index a folder holds, told without reading it: its manifest file's inode, mtime and size."""

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, index_dir: Path) -> Generation | None:
        """The generation in ``index_dir`` now; None without a manifest (gone, or mid-swap off Linux)."""
        try:
            st = (index_dir / MANIFEST).stat()
        except OSError:
            return None
        return cls(st.st_ino, st.st_mtime_ns, st.st_size)


def _digest(data: IndexData) -> str:
    return str(data.manifest.get("manifest_sha256", ""))


class LiveIndex(Generic[S]):
    """The current state of an index, fixed until :meth:`follow` makes it follow its folder.

    :meth:`current` is all a request calls. Without a watcher thread it checks
    the folder itself, at most every ``interval`` seconds (one ``stat``), and
    the request that finds a newer index loads it; other requests meanwhile
    go on with the state they have. With :meth:`watch` (``qa serve``) a
    background thread checks instead and no request ever waits for a load.
    """

    def __init__(self, state: S) -> None:
        self._state = state
        self._index_dir: Path | None = None
        self._open: Callable[[IndexData], S] | None = None
        self._poll: Callable[[S], S | None] | None = None
        self._interval = 0.0
        self._note: Note = _silent
        self._next_check = float("inf")
        self._seen: Generation | None = None  # the generation whose digest matched the state's
        self._failed: tuple[Generation | None, int] | None = None  # a generation that failed, and how often
        self._retry_at = 0.0
        self._reloading = threading.Lock()
        self._wake = threading.Event()
        self._watching = False

    def follow(
        self, index_dir: Path, open_state: Callable[[IndexData], S], interval: float, note: Note | None
    ) -> None:
        """Follow ``index_dir`` from now on: a newer index there becomes ``open_state(load_index(...))``.

        ``open_state`` raises a QAError for an index it cannot serve (a
        retriever out of step with it); ``note`` is told each swap, and each
        new index that cannot be loaded, once.
        """
        self._index_dir, self._open, self._interval = index_dir, open_state, interval
        self._note = note or _silent
        self._next_check = time.monotonic() + interval

    def follow_source(self, poll: Callable[[S], S | None], interval: float, note: Note | None) -> None:
        """Follow a source that is not a folder (a Milvus replica): ``poll(state)`` is a newer state or None.

        ``poll`` raises a QAError when the source cannot be read; the state in use is kept.
        """
        self._poll, self._interval = poll, interval
        self._note = note or _silent
        self._next_check = time.monotonic() + interval

    def current(self) -> S:
        """The state to answer one request from; take it once per request and use only it."""
        due = not self._watching and time.monotonic() >= self._next_check
        if due and self._reloading.acquire(blocking=False):
            try:
                if time.monotonic() >= self._next_check:  # not checked by another request meanwhile
                    self._check(force=False)
            finally:
                self._reloading.release()
        return self._state

    def refresh(self, force: bool = True) -> bool:
        """Check the folder now and swap in a newer index; True when one was swapped in.

        Waits for a reload in progress, then finds its index current rather
        than loading it again. ``force`` retries an index that failed before
        without waiting for its back-off.
        """
        with self._reloading:
            return self._check(force)

    def watch(self, wake_signal: int | None = None) -> None:
        """Check in a background thread every ``interval`` seconds, and at once on ``wake_signal``.

        The signal handler is installed only from the main thread (Python's
        rule); it just wakes the thread, which does the loading.
        """
        if (self._index_dir is None and self._poll is None) or self._watching:
            return
        if wake_signal is not None and threading.current_thread() is threading.main_thread():
            wake = self._wake
            signal.signal(wake_signal, lambda _signum, _frame: wake.set())
        self._watching = True
        # The thread holds the index weakly: an engine dropped by its program stops its watcher.
        # An interval of 0 (check on every request) is a tenth of a second here, not a busy loop.
        args = (weakref.ref(self), self._wake, max(self._interval, 0.1))
        threading.Thread(target=_watch, args=args, name="newsqa-index-watch", daemon=True).start()

    def _check(self, force: bool) -> bool:
        """Under the reload lock: swap in the folder's index if it is newer than the state's."""
        now = time.monotonic()
        self._next_check = now + self._interval
        if self._poll is not None:
            return self._polled(self._poll)
        if self._index_dir is None or self._open is None:
            return False
        generation = Generation.of(self._index_dir)
        if generation is not None and generation == self._seen:
            return False
        failed = self._failed is not None and self._failed[0] == generation
        if failed and not force and now < self._retry_at:
            return False
        try:
            return self._reload(generation)
        except (QAError, OSError) as exc:
            self._fail(generation, exc)
            return False

    def _reload(self, generation: Generation | None) -> bool:
        index_dir, open_state = self._index_dir, self._open
        assert index_dir is not None and open_state is not None
        if generation is None:
            raise FileNotFoundError(f"no {MANIFEST} in {index_dir}")
        manifest = read_manifest(index_dir)
        if manifest is not None and manifest.get("manifest_sha256") == _digest(self._state.data):
            self._seen, self._failed = generation, None  # the same index (a touched or copied manifest)
            return False
        data = load_index(index_dir)
        if Generation.of(index_dir) != generation:
            # Swapped again while loading: its files may be of two indexes. The next check loads the newest.
            self._next_check = time.monotonic()
            return False
        _check_compatible(self._state.data, data)
        state = open_state(data)
        self._state = state  # the swap: one reference, taken whole by each request from now on
        self._seen, self._failed = generation, None
        counts = data.manifest["counts"]
        self._note(
            f"index in {index_dir} changed; now answering from the new one "
            f"({counts['articles']} articles, {counts['live_passages']} passages)"
        )
        return True

    def _polled(self, poll: Callable[[S], S | None]) -> bool:
        """Under the reload lock: swap in the state ``poll`` finds newer, if any."""
        try:
            newer = poll(self._state)
        except QAError as exc:
            if self._failed is None:
                self._note(f"checking for a newer index failed ({exc}); still answering from the one loaded")
            self._failed = (None, 1)
            return False
        self._failed = None
        if newer is None:
            return False
        self._state = newer
        counts = newer.data.manifest["counts"]
        self._note(
            f"the index changed; now answering from the new one "
            f"({counts['articles']} articles, {counts['live_passages']} passages)"
        )
        return True

    def _fail(self, generation: Generation | None, exc: Exception) -> None:
        """Keep the old state; say so once per new index, and retry later, less often each time."""
        tries = self._failed[1] + 1 if self._failed is not None and self._failed[0] == generation else 1
        self._failed = (generation, tries)
        wait = min(_MAX_RETRY_SECONDS, max(self._interval, 0.1) * 2 ** (tries - 1))
        self._retry_at = time.monotonic() + wait
        if tries == 1:
            self._note(
                f"index in {self._index_dir} changed but cannot be loaded ({exc}); still answering from "
                "the index loaded before, and trying again"
            )


def _check_compatible(old: IndexData, new: IndexData) -> None:
    """Refuse an index this process cannot answer from; a restart opens it (qa.index.current).

    Another model needs another encoder, and another schema another version of newsqa.
    """
    for key, label in (("model", "model"), ("schema_version", "index format")):
        before, after = old.manifest["spec"].get(key), new.manifest["spec"].get(key)
        if before != after:
            raise IndexStoreError(f"it has {label} {after!r}, not {before!r}; restart the app to use it")


def _watch(ref: weakref.ref[LiveIndex], wake: threading.Event, interval: float) -> None:
    """The watcher thread's loop: check every ``interval`` seconds, or at once when woken."""
    while True:
        woken = wake.wait(interval)
        wake.clear()
        live = ref()
        if live is None:
            return
        try:
            live.refresh(force=woken)
        except Exception as exc:  # the watcher must outlive any one failed check
            live._note(f"checking the index for a newer one failed: {exc}")
        del live


def _silent(_message: str) -> None:
    pass
