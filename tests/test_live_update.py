"""A running engine or app follows its index: after ``qa index``, answers come from the new index.

A small corpus of three bundled articles is changed the way a newsroom
changes one (one article removed, one edited, one added) and indexed with the
real ``qa index``; from a bounded time after it finishes, no answer of an
engine or app that stayed open cites the removed article or the edited-away
text, and the added article is found. No request fails during the swap, the
old index's memory is freed once no request holds it, and a new index that
cannot be loaded leaves the old one answering.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, ROOT, serve_app

from qa.engine import Engine, IndexState
from qa.errors import InputError
from qa.index.folder import swap_into_place
from qa.index.live import LiveIndex
from qa.index.store import _manifest_digest, load_index
from qa.settings import Settings
from qa.web.result_json import result_json

BASE = ("001_2879f98caf0dd501", "003_2b5d70423e18adf0", "004_7ea3a471efd226e9")
REMOVED = "004_7ea3a471efd226e9"  # the taxi police offered the couple
EDITED = "003_2b5d70423e18adf0"  # the Auckland Pride director is renamed in it
ADDED = "002_f5cbbc7b4e1b3f9f"  # Star Observer's report, a new outlet
GONE_TEXT = "Tweedie"
DIRECTOR = "Who is the director of Auckland Pride?"
OFFER = "What did police offer the couple?"
ISOLATED = "Who found themselves alone and isolated when police refused to escort them home?"
QUESTIONS = (DIRECTOR, OFFER, ISOLATED)
# Answers come from the new index within this many seconds of `qa index`
# exiting: the app's poll interval (Settings.index_poll_seconds, 2 s) plus a
# reload (well under a second here), with room for a 2-core machine that
# also serves the clients asking throughout.
BOUND_SECONDS = 20.0


def write_corpus(folder: Path, names: Sequence[str]) -> Path:
    """A corpus folder of bundled articles ``names``, with their rows of sources.csv."""
    folder.mkdir(parents=True)
    rows = (CORPUS / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    for name in names:
        shutil.copy2(CORPUS / f"{name}.txt", folder / f"{name}.txt")
    keep = [r for r in rows[1:] if r.startswith(tuple(names))]
    (folder / "sources.csv").write_text("".join(rows[:1] + keep), encoding="utf-8")
    return folder


def change_corpus(corpus: Path) -> None:
    """Remove one article, edit one (the director's name) and add one, with its sources.csv row."""
    (corpus / f"{REMOVED}.txt").unlink()
    edited = corpus / f"{EDITED}.txt"
    text = edited.read_text(encoding="utf-8").replace("Max Tweedie", "Aroha Ngata")
    edited.write_text(text.replace(GONE_TEXT, "Ngata"), encoding="utf-8")
    shutil.copy2(CORPUS / f"{ADDED}.txt", corpus / f"{ADDED}.txt")
    bundled = (CORPUS / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    rows = (corpus / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    rows = [r for r in rows if not r.startswith(REMOVED)] + [r for r in bundled if r.startswith(ADDED)]
    (corpus / "sources.csv").write_text("".join(rows), encoding="utf-8")


def qa_index(corpus: Path, index: Path) -> subprocess.CompletedProcess[str]:
    """The real ``qa index``, in its own process, as a user runs it beside a running app."""
    command = [sys.executable, "-m", "qa", "index", "--corpus", str(corpus), "--index", str(index)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)


def shown(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(doc_id, text) of everything a result (its JSON) cites or shows."""
    cited = [(c["doc_id"], c["text"]) for a in result["answers"] for c in a["citations"]]
    cited += [(a["citations"][0]["doc_id"], a["text"]) for a in result["answers"] if a["citations"]]
    return cited + [(p["doc_id"], p["text"]) for p in result["passages"]]


def stale(result: dict[str, Any]) -> list[str]:
    """What a result shows that the updated corpus no longer holds."""
    found = [f"{doc_id} cited" for doc_id, _ in shown(result) if doc_id == REMOVED]
    return found + [f"{GONE_TEXT!r} in {doc_id}" for doc_id, text in shown(result) if GONE_TEXT in text]


def finds_added(result: dict[str, Any]) -> bool:
    return any(doc_id == ADDED for doc_id, _ in shown(result))


def ask_all(engine: Engine) -> dict[str, dict[str, Any]]:
    return {q: result_json(engine.ask(q, top_k=5)) for q in QUESTIONS}


def assert_old(results: dict[str, dict[str, Any]]) -> None:
    """The answers of the index before the change: the test can tell one index from the other."""
    assert any(stale(r) for r in results.values())
    assert {REMOVED, EDITED} <= {d for r in results.values() for d, _ in shown(r)}
    assert not finds_added(results[ISOLATED])


def assert_new(results: dict[str, dict[str, Any]]) -> None:
    assert [s for r in results.values() for s in stale(r)] == []
    assert finds_added(results[ISOLATED])
    assert "Aroha Ngata" in " ".join(text for _, text in shown(results[DIRECTOR]))


@dataclass(frozen=True)
class Generations:
    """A corpus and its index before the change, and the index after it (a real update)."""

    corpus: Path
    before: Path
    after: Path


@pytest.fixture(scope="module")
def generations(tmp_path_factory: pytest.TempPathFactory) -> Generations:
    folder = tmp_path_factory.mktemp("generations")
    corpus = write_corpus(folder / "corpus", BASE)
    Engine.open(corpus, folder / "before", progress=False, load_reader=False)
    changed = folder / "changed"
    shutil.copytree(corpus, changed)
    change_corpus(changed)
    shutil.copytree(folder / "before", folder / "after")
    notes: list[str] = []
    Engine.open(changed, folder / "after", progress=False, load_reader=False, note=notes.append)
    assert any("1 added, 1 edited, 1 removed" in n for n in notes), notes
    return Generations(corpus, folder / "before", folder / "after")


def open_copy(generations: Generations, tmp_path: Path, poll: float, notes: list[str]) -> tuple[Engine, Path]:
    """An engine over a private copy of the index before the change."""
    index = tmp_path / "index"
    shutil.copytree(generations.before, index)
    settings = Settings(index_poll_seconds=poll)
    engine = Engine.open(generations.corpus, index, settings=settings, progress=False, note=notes.append)
    return engine, index


def install(source: Path, index: Path) -> None:
    """Put a copy of the index ``source`` at ``index`` the way a build or an update does: one swap."""
    staged = index.parent / f".{index.name}.building-test"
    shutil.copytree(source, staged)
    swap_into_place(staged, index)


def test_an_open_engine_answers_from_the_index_qa_index_updated(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", BASE)
    poll = 1.0
    settings = Settings(index_poll_seconds=poll)
    engine = Engine.open(corpus, tmp_path / "index", settings=settings, progress=False)
    view = engine.with_settings(passages_shown=5)
    assert_old(ask_all(engine))
    change_corpus(corpus)
    done = qa_index(corpus, tmp_path / "index")
    assert done.returncode == 0, done.stderr
    assert "1 added, 1 edited, 1 removed" in done.stderr
    time.sleep(poll)
    # The first question after the interval finds the new index and is answered from it.
    assert_new(ask_all(engine))
    assert_new(ask_all(view))  # a view follows the same index
    assert "Star Observer" in engine.outlets and "Aroha Ngata" in engine.article(EDITED).body
    assert REMOVED not in engine.articles
    with pytest.raises(InputError, match="no article"):
        engine.article(REMOVED)


@dataclass(frozen=True)
class Asked:
    """One /ask request: when it was sent and came back (monotonic), and its result or error."""

    sent: float
    done: float
    question: str
    result: dict[str, Any] | None
    error: str = ""


@contextlib.contextmanager
def asking(url: str, clients: int) -> Iterator[list[Asked]]:
    """``clients`` API clients asking QUESTIONS in turn until the block ends; every request is kept."""
    from gradio_client import Client

    asked: list[Asked] = []
    stop = threading.Event()

    def run(offset: int) -> None:
        client = Client(url, verbose=False)
        n = offset
        while not stop.is_set():
            question, sent = QUESTIONS[n % len(QUESTIONS)], time.monotonic()
            n += 1
            try:
                result = client.predict(question, api_name="/ask")
                asked.append(Asked(sent, time.monotonic(), question, result))
            except Exception as exc:  # every failed request is a finding: keep its message
                asked.append(Asked(sent, time.monotonic(), question, None, f"{type(exc).__name__}: {exc}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield asked
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)


def wait_for(asked: list[Asked], count: int, since: float) -> None:
    deadline = time.monotonic() + 180
    while sum(a.sent >= since for a in asked) < count:
        assert time.monotonic() < deadline, f"only {len(asked)} requests came back"
        time.sleep(0.2)


def test_a_running_app_answers_from_the_updated_index_and_no_request_fails(
    tmp_path: Path, generations: Generations
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(generations.corpus, corpus)
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copytree(generations.before, folder / "index")
    with serve_app(folder, corpus) as server, asking(server.url, clients=4) as asked:
        wait_for(asked, 6, 0.0)
        change_corpus(corpus)
        done = qa_index(corpus, server.index)
        indexed = time.monotonic()
        # Clients ask throughout: past the bound, then for as many answers again.
        time.sleep(BOUND_SECONDS)
        wait_for(asked, 30, indexed + BOUND_SECONDS)
        log = server.log.read_text()
    assert done.returncode == 0, done.stderr
    assert "1 added, 1 edited, 1 removed" in done.stderr
    assert [a.error for a in asked if a.error] == []
    assert_old({a.question: a.result for a in asked if a.done < indexed - 5 and a.result})
    after = [a for a in asked if a.sent >= indexed + BOUND_SECONDS and a.result]
    assert [(a.question, s) for a in after for s in stale(a.result)] == []
    isolated = [a for a in after if a.question == ISOLATED]
    assert isolated and all(finds_added(a.result) for a in isolated)
    assert "now answering from the new one" in log and "Traceback" not in log


def test_sighup_makes_a_watching_engine_load_the_new_index_at_once(
    tmp_path: Path, generations: Generations
) -> None:
    # An hour between checks: only the signal can explain a reload within the test.
    engine, index = open_copy(generations, tmp_path, 3600.0, [])
    before = engine.live.current()
    previous = signal.getsignal(signal.SIGHUP)
    try:
        engine.live.watch(wake_signal=signal.SIGHUP)  # what qa serve does
        install(generations.after, index)
        assert engine.live.current() is before, "a watched engine never loads in a request"
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 30
        while engine.live.current() is before:
            assert time.monotonic() < deadline, "SIGHUP did not reload the index"
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGHUP, previous)
    del before
    assert_new(ask_all(engine))


def test_the_old_index_is_freed_once_no_request_holds_it(tmp_path: Path, generations: Generations) -> None:
    engine, index = open_copy(generations, tmp_path, 3600.0, [])
    # Fill every cache that could keep the old index: the passage filter's, the article store's.
    engine.ask(DIRECTOR, outlets=["1 NEWS"], since="2020-03-01")
    assert engine.article(EDITED).doc_id == EDITED and len(engine.articles) == 3
    view = engine.with_reader(None)
    held = engine.live.current()  # a request in flight holds the state it started with
    old_data, old_filter = weakref.ref(held.data), weakref.ref(held.filter)
    old_store = weakref.ref(held.data.store)
    install(generations.after, index)
    assert engine.live.refresh()
    assert engine.live.current() is not held and view.live.current() is engine.live.current()
    assert held.data.article_by_id(REMOVED) is not None, "the request in flight still reads its own index"
    gc.collect()
    assert old_data() is not None
    del held
    gc.collect()
    assert (old_data(), old_filter(), old_store()) == (None, None, None)
    assert_new(ask_all(view))


def test_a_new_index_that_cannot_load_leaves_the_old_one_answering_and_says_so_once(
    tmp_path: Path, generations: Generations
) -> None:
    notes: list[str] = []
    engine, index = open_copy(generations, tmp_path, 3600.0, notes)
    damaged = tmp_path / "damaged"
    shutil.copytree(generations.after, damaged)
    faiss_file = damaged / "passages.faiss"
    faiss_file.write_bytes(b"\0" * faiss_file.stat().st_size)
    before = engine.live.current()
    notes.clear()
    install(damaged, index)
    assert not engine.live.refresh()
    assert engine.live.current() is before
    assert len(notes) == 1 and "cannot be loaded" in notes[0] and "passages.faiss" in notes[0], notes
    assert_old(ask_all(engine))
    assert not engine.live.refresh(force=False), "a failed index is retried after a back-off"
    assert not engine.live.refresh()  # retried at once when asked to, and failing again
    assert len(notes) == 1, "the failure is told once"
    install(generations.after, index)  # the next update puts a whole index in place
    assert engine.live.refresh()
    assert "now answering from the new one" in notes[-1]
    assert_new(ask_all(engine))


def test_one_reload_per_new_index_and_no_request_waits(tmp_path: Path, generations: Generations) -> None:
    index = tmp_path / "index"
    shutil.copytree(generations.before, index)
    opened: list[int] = []

    def slow_open(data: Any) -> IndexState:
        opened.append(len(data.live))
        time.sleep(2.0)  # a large index takes a while to load
        return IndexState.over(data)

    live = LiveIndex(IndexState.over(load_index(index)))
    live.follow(index, slow_open, 0.0, None)  # every request is due to check
    before = live.current()
    install(generations.after, index)
    barrier = threading.Barrier(8)
    waited: list[float] = []

    def request() -> None:
        barrier.wait()
        started = time.monotonic()
        live.current()
        waited.append(time.monotonic() - started)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One request found the new index and loaded it; the seven others went on at once.
    assert len(opened) == 1 and sorted(waited)[6] < 0.5, waited
    assert live.current() is not before
    for _ in range(5):
        live.current()
    assert len(opened) == 1


def test_an_index_of_another_model_is_refused_until_a_restart(
    tmp_path: Path, generations: Generations
) -> None:
    notes: list[str] = []
    engine, index = open_copy(generations, tmp_path, 3600.0, notes)
    other = tmp_path / "other"
    shutil.copytree(generations.after, other)
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    manifest["spec"]["model"] = "another-model"  # as `qa index --model another-model` would record
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    (other / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    before = engine.live.current()
    install(other, index)
    assert not engine.live.refresh()
    assert engine.live.current() is before
    assert "another-model" in notes[-1] and "restart" in notes[-1], notes
