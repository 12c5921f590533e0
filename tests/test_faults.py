"""Faults lose nothing: killed builds and updates, damaged index files, two builders at once.

Every test builds its own index of a two-article corpus in a temporary folder,
with the real model, FAISS and tantivy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AppServer, two_article_corpus

from qa.answer.reader import Reader
from qa.corpus.folder import load_corpus
from qa.embedding.embedder import Embedder
from qa.engine import Engine
from qa.errors import IndexStoreError
from qa.index.store import MANIFEST, load_index, lock_path, read_manifest, verify_index
from qa.settings import Settings
from qa.web.result_json import result_json

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
QUESTIONS = ("Who is the director of Auckland Pride?", "What did police offer the couple?")
KILLS = 20
SEED = 10

# A process that has loaded the model once and forks one `qa index` per line
# it reads, so each build starts in milliseconds rather than the seconds a
# fresh interpreter spends importing torch and loading the model. It prints
# the child's pid, then its wait status.
_FORK_SERVER = """
import os, sys
import torch
from qa.cli import main
from qa.corpus.folder import load_corpus
from qa.embedding.embedder import Embedder
torch.set_num_threads(1)  # no thread pool for a forked child to inherit half-made
Embedder().encode(["warm up"])  # loaded and warmed once, shared by every forked build
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        os._exit(main(line.split()))
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


def _answers(engine: Engine) -> list[list[dict]]:
    return [result_json(engine.ask(q))["answers"] for q in QUESTIONS]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """One loaded model for checking many indexes quickly."""
    embedder = Embedder()
    embedder.encode(["warm up"])
    return embedder


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(corpus, index): a complete index of the small corpus, never modified."""
    folder = tmp_path_factory.mktemp("built")
    corpus = two_article_corpus(folder / "corpus")
    Engine.open(corpus, folder / "index", progress=False)
    return corpus, folder / "index"


@pytest.fixture(scope="module")
def reader() -> Reader:
    """The shipped reader, loaded once, as Engine.open uses it."""
    reader = Reader()
    reader.model  # noqa: B018
    return reader


@pytest.fixture(scope="module")
def baseline(built: tuple[Path, Path], embedder: Embedder, reader: Reader) -> list[list[dict]]:
    return _answers(Engine(load_index(built[1]), embedder, Settings(), (), reader))


def _leftovers(index: Path) -> list[str]:
    return sorted(p.name for p in index.parent.iterdir() if p.name.startswith(f".{index.name}."))


@pytest.fixture
def fork_server() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORK_SERVER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


def _start_build(server: subprocess.Popen[str], corpus: Path, index: Path, force: bool = True) -> int:
    """Start ``qa index`` in a forked child (a rebuild with ``force``, else a build or update); its pid."""
    server.stdin.write(f"index {'--force ' if force else ''}--corpus {corpus} --index {index}\n")
    server.stdin.flush()
    return int(server.stdout.readline())


def test_sigkill_during_builds_never_loses_the_index(
    tmp_path: Path,
    fork_server: subprocess.Popen[str],
    embedder: Embedder,
    reader: Reader,
    baseline: list[list[dict]],
) -> None:
    rng = random.Random(SEED)
    corpus = two_article_corpus(tmp_path / "corpus")
    index = tmp_path / "index"

    assert load_corpus(corpus).problems == ()  # so a finished `qa index` exits 0
    # A first build killed part way: there was no index, so the next start builds one cleanly.
    os.kill(_start_build(fork_server, corpus, index), signal.SIGKILL)
    fork_server.stdout.readline()  # its wait status: killed, or done if it was quicker
    assert read_manifest(index) is None or load_index(index)
    assert _answers(Engine.open(corpus, index, progress=False)) == baseline

    # How long a whole build takes, so the kills land anywhere inside one: the shorter of
    # two, as a build after a warm-up (caches, page cache) runs faster than the first.
    durations = []
    for _ in range(2):
        started = time.monotonic()
        _start_build(fork_server, corpus, index)
        assert int(fork_server.stdout.readline()) == 0
        durations.append(time.monotonic() - started)
    duration = min(durations)

    killed = 0
    for _ in range(KILLS):
        pid = _start_build(fork_server, corpus, index)
        time.sleep(rng.uniform(0, duration))
        # A build that finished first must have left a good index too.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        status = int(fork_server.stdout.readline())
        killed += os.WIFSIGNALED(status)
        assert _answers(Engine(load_index(index), embedder, Settings(), (), reader)) == baseline
    assert killed >= KILLS // 2, f"only {killed} of {KILLS} builds were killed before finishing"

    _start_build(fork_server, corpus, index)
    assert int(fork_server.stdout.readline()) == 0
    assert _leftovers(index) == [], "a finished build clears what killed ones left"


def _building(index: Path) -> list[str]:
    return [n for n in _leftovers(index) if n.startswith(f".{index.name}.building-")]


def _kill_inside_a_build(server: subprocess.Popen[str], corpus: Path, index: Path) -> bool:
    """Start a rebuild and SIGKILL it once its temporary folder exists; True if it was killed there."""
    pid = _start_build(server, corpus, index)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _building(index):
        time.sleep(0.002)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return os.WIFSIGNALED(int(server.stdout.readline())) and _leftovers(index) != []


def test_qa_ask_after_a_killed_build_clears_its_leftovers(
    tmp_path: Path, fork_server: subprocess.Popen[str], built: tuple[Path, Path]
) -> None:
    """A killed build's temporary folder goes with the next command that opens the index."""
    corpus, index = built[0], tmp_path / "index"
    shutil.copytree(built[1], index)
    assert any(_kill_inside_a_build(fork_server, corpus, index) for _ in range(5)), "no build killed mid-way"
    assert _building(index)

    done = subprocess.run(
        [sys.executable, "-m", "qa", "ask", QUESTIONS[0], "--corpus", str(corpus), "--index", str(index)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Max Tweedie" in done.stdout
    assert _leftovers(index) == []
    assert "rebuild" not in done.stderr and "building" not in done.stderr, "the index was current: used as is"


def test_leftovers_of_a_running_build_are_left_alone(built: tuple[Path, Path], tmp_path: Path) -> None:
    """While another process holds the build lock, its temporary folder is in use: opening leaves it."""
    corpus, index = built[0], tmp_path / "index"
    shutil.copytree(built[1], index)
    in_use = tmp_path / f".{index.name}.building-inuse"
    in_use.mkdir()
    lock = lock_path(index)
    lock.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        Engine.open(corpus, index, progress=False, load_reader=False)
        assert in_use.is_dir()
        fcntl.flock(handle, fcntl.LOCK_UN)
    Engine.open(corpus, index, progress=False, load_reader=False)
    assert not in_use.exists()


def test_sigkill_during_updates_never_loses_the_index(
    tmp_path: Path,
    fork_server: subprocess.Popen[str],
    built: tuple[Path, Path],
    embedder: Embedder,
    reader: Reader,
    baseline: list[list[dict]],
) -> None:
    rng = random.Random(SEED)
    corpus, index = built
    grown = tmp_path / "grown"
    shutil.copytree(corpus, grown)
    added = "000_3aa418e33fff14e7.txt"
    shutil.copy(CORPUS / added, grown / added)
    rows = (CORPUS / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    with (grown / "sources.csv").open("a", encoding="utf-8") as out:
        out.write(next(r for r in rows if r.startswith(added)))
    assert load_corpus(grown).problems == ()

    # Whole updates, to know how long one takes (the quicker of two: the first
    # pays for cold caches) and what it gives.
    durations = []
    for name in ("first", "done"):
        done = tmp_path / name
        shutil.copytree(index, done)
        started = time.monotonic()
        _start_build(fork_server, grown, done, force=False)
        assert int(fork_server.stdout.readline()) == 0
        durations.append(time.monotonic() - started)
    duration = min(durations)
    assert load_index(done).manifest["segments"] == ["000000", "000001"], "an update, not a rebuild"
    updated = _answers(Engine(load_index(done), embedder, Settings(), (), reader))

    killed = 0
    for attempt in range(KILLS // 2):
        copy = tmp_path / f"index-{attempt}"
        shutil.copytree(index, copy)
        pid = _start_build(fork_server, grown, copy, force=False)
        # The first half: the update itself (the rest is loading the result and the reader).
        time.sleep(rng.uniform(0, duration / 2))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        killed += os.WIFSIGNALED(int(fork_server.stdout.readline()))
        # The previous index whole (every checksum verified), or the finished update.
        assert _answers(Engine(load_index(copy), embedder, Settings(), (), reader)) in (baseline, updated)
    assert killed >= KILLS // 4, f"only {killed} of {KILLS // 2} updates were killed before finishing"
    _start_build(fork_server, grown, copy, force=False)
    assert int(fork_server.stdout.readline()) == 0
    assert _answers(Engine(load_index(copy), embedder, Settings(), (), reader)) == updated
    assert _leftovers(copy) == [], "a finished update clears what killed ones left"


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zeroed":
        path.write_bytes(b"\0" * len(data))
    elif how == "patched":  # four bytes in the middle: the file still parses, its content is wrong
        middle = len(data) // 2
        flipped = bytes(b ^ 0x5A for b in data[middle : middle + 4])
        path.write_bytes(data[:middle] + flipped + data[middle + 4 :])
    else:  # garbage of the same size
        path.write_bytes(random.Random(path.name).randbytes(len(data)))


@pytest.mark.parametrize("how", ["truncated", "zeroed", "garbage", "patched"])
def test_every_damaged_index_file_is_named_by_verify(
    tmp_path: Path, built: tuple[Path, Path], how: str
) -> None:
    _, index = built
    assert verify_index(index) == []
    names = [MANIFEST, *json.loads((index / MANIFEST).read_text())["files"]]
    assert "passages.faiss" in names and "bm25/meta.json" in names
    for name in names:
        copy = tmp_path / f"{how}-{name.replace('/', '_')}"
        shutil.copytree(index, copy)
        _damage(copy / name, how)
        assert [p.name for p in verify_index(copy)] == [name]


def test_every_truncated_index_file_is_named_on_load(tmp_path: Path, built: tuple[Path, Path]) -> None:
    """A load hashes nothing, but sizes are checked: a cut-short file is named before it is opened."""
    _, index = built
    names = [MANIFEST, *json.loads((index / MANIFEST).read_text())["files"]]
    for name in names:
        copy = tmp_path / name.replace("/", "_")
        shutil.copytree(index, copy)
        _damage(copy / name, "truncated")
        with pytest.raises(IndexStoreError, match=name.replace(".", r"\.")):
            load_index(copy)


@pytest.mark.parametrize("how", ["zeroed", "garbage", "patched"])
def test_a_load_of_a_damaged_file_of_the_right_size_fails_cleanly_or_loads(
    tmp_path: Path, built: tuple[Path, Path], how: str
) -> None:
    """What a load cannot see without hashing never escapes as anything but IndexStoreError."""
    _, index = built
    for name in json.loads((index / MANIFEST).read_text())["files"]:
        copy = tmp_path / f"{how}-{name.replace('/', '_')}"
        shutil.copytree(index, copy)
        _damage(copy / name, how)
        with contextlib.suppress(IndexStoreError):
            load_index(copy)


@pytest.mark.parametrize(
    ("name", "how"),
    # Loads hash nothing (qa verify does), so the damage here is of the kinds a load sees:
    # a size, a file its reader refuses, a manifest.
    [("articles.sqlite", "truncated"), ("passages.faiss", "zeroed"), (MANIFEST, "truncated")],
)
def test_a_damaged_index_is_rebuilt_with_a_notice_naming_the_file(
    tmp_path: Path, built: tuple[Path, Path], baseline: list[list[dict]], name: str, how: str
) -> None:
    corpus, index = built
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    _damage(copy / name, how)
    engine = Engine.open(corpus, copy, progress=False)
    assert any("damaged" in n and name in n and "rebuilding" in n for n in engine.notices), engine.notices
    assert _answers(engine) == baseline


def test_a_second_build_waits_for_the_lock_and_names_it(tmp_path: Path, built: tuple[Path, Path]) -> None:
    corpus, index = built
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    lock = lock_path(copy)
    assert ROOT not in lock.parents, "the lock stays out of the work tree"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running build holds it
        proc = subprocess.Popen(
            [sys.executable, "-m", "qa", "index", "--force", "--corpus", str(corpus), "--index", str(copy)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        waiting = ""
        while "waiting" not in waiting:
            waiting = proc.stderr.readline()
            assert waiting or proc.poll() is None, "qa index ended without waiting for the lock"
        assert str(lock) in waiting
        time.sleep(0.5)
        assert proc.poll() is None, "the second build must wait while the lock is held"
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "2 articles" in out
    assert load_index(copy).manifest["counts"]["articles"] == 2


def test_the_app_keeps_answering_while_qa_index_rebuilds_its_index(app_server: AppServer) -> None:
    from gradio_client import Client

    client = Client(app_server.url, verbose=False)
    want = client.predict(QUESTIONS[0], api_name="/ask")["answers"]
    answers: list[list[dict]] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.wait(0.2):  # a steady reader, not a flood that starves the rebuild of CPU
            answers.append(client.predict(QUESTIONS[0], api_name="/ask")["answers"])

    command = [sys.executable, "-m", "qa", "index", "--force", "--corpus", str(CORPUS)]
    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        rebuild = subprocess.run(
            [*command, "--index", str(app_server.index)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
    finally:
        stop.set()
        asker.join(timeout=60)
    assert rebuild.returncode == 0, rebuild.stderr
    assert len(answers) >= 3, "the app was asked throughout the rebuild"
    assert all(a == want for a in answers)
    assert client.predict(QUESTIONS[0], api_name="/ask")["answers"] == want
    assert load_index(app_server.index).manifest["counts"]["articles"] == 5
    assert "Traceback" not in app_server.log.read_text()
