"""The streaming build on Ray Data (a local Ray of 2 CPUs, started once) against the in-process build."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.corpus.folder import load_folder
from qa.embedding.embedder import Embedder
from qa.engine import Engine
from qa.errors import ClusterError, CorpusError, InputError
from qa.index.entities import EntityTagger, sentence_entities
from qa.index.shard_rows import MAX_SHARD_ROWS, TooManySentences, article_id, sentence_id, split_article
from qa.index.split import make_passages, split_sentences
from qa.index.store import load_index
from qa.index.stream_build import ShardBuildOptions, build_shards, input_shards, read_shard_rows
from qa.records import Article
from qa.settings import Settings

ray = pytest.importorskip("ray", reason="the optional extra: pip install 'newsqa[scale]'")
pa = pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
SETTINGS = Settings()



@pytest.fixture(scope="module")
def corpus_build(local_ray: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled corpus (5 articles) built in shards of 2: shards 0 and 1 of 2 articles, shard 2 of 1."""
    out = tmp_path_factory.mktemp("corpus") / "out"
    report = build_shards([CORPUS], out, ShardBuildOptions(shard_articles=2))
    assert report.built == (0, 1, 2) and report.articles == 5 and report.problem_count == 0
    return out


def _article(row: dict[str, Any]) -> Article:
    return Article(row["doc_id"], row["body"], row["outlet"], row["date"], row["title"], row["url"])


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_rows_equal_the_in_process_build(corpus_build: Path) -> None:
    articles = load_folder(CORPUS).articles
    rows = [row for shard in range(3) for row in read_shard_rows(corpus_build, shard)]
    assert [row["doc_id"] for row in rows] == [a.doc_id for a in articles]  # cut in file order
    assert [row["article"] for row in rows] == [article_id(n // 2, n % 2) for n in range(5)]
    embedder, tagger = Embedder(), EntityTagger()
    for row, article in zip(rows, articles, strict=True):
        assert _article(row) == article
        sentences = split_sentences(article.doc_id, article.body)
        passages = make_passages(
            article.body, sentences, SETTINGS.sentences_per_passage, SETTINGS.passage_stride
        )
        assert [(s["start"], s["end"]) for s in row["sentences"]] == [(s.start, s.end) for s in sentences]
        for s, expected in zip(row["sentences"], sentences, strict=True):
            assert row["body"][s["start"] : s["end"]] == expected.text
        first = sentence_id(row["article"], 0)
        assert [
            (
                p["passage_id"] - first,
                p["start"],
                p["end"],
                p["first_sentence"] - first,
                p["last_sentence"] - first,
            )
            for p in row["passages"]
        ] == [(i, p.start, p.end, p.first_sentence, p.last_sentence) for i, p in enumerate(passages)]
        texts = [s.text for s in sentences]
        for stored, expected in (
            (row["sentence_vectors"], embedder.encode(texts)),
            (row["passage_vectors"], embedder.encode([p.text for p in passages])),
        ):
            vectors = np.asarray(stored, dtype=np.float32)
            assert vectors.shape == expected.shape
            assert _cosines(vectors, expected).min() > 0.999
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        entities = tagger.tag(texts)
        for i, s in enumerate(row["sentences"]):
            assert [tuple(e) for e in json.loads(s["entities"])] == sentence_entities(entities, i)


def test_manifest_records_the_model_settings_and_shards(corpus_build: Path) -> None:
    manifest = json.loads((corpus_build / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == Embedder().model_id and manifest["dimension"] == 384
    assert (manifest["sentences_per_passage"], manifest["passage_stride"]) == (3, 2)
    assert manifest["entity_model"] == EntityTagger().version
    assert [(s["shard"], s["articles"]) for s in manifest["shards"]] == [(0, 2), (1, 2), (2, 1)]
    assert not (corpus_build / "staging").exists()


def test_a_rerun_with_other_settings_is_refused(corpus_build: Path) -> None:
    with pytest.raises(InputError, match="other shard_articles"):
        build_shards([CORPUS], corpus_build, ShardBuildOptions(shard_articles=3))


def _archive_set(folder: Path) -> list[Path]:
    """Three JSON Lines files of one or two bundled articles each: three shards."""
    articles = load_folder(CORPUS).articles
    folder.mkdir()
    paths = []
    for number, chunk in enumerate((articles[:2], articles[2:3], articles[3:5])):
        path = folder / f"part-{number}.jsonl"
        rows = [{"id": a.doc_id, "text": a.body, "outlet": a.outlet, "date": a.date} for a in chunk]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        paths.append(path)
    return paths


def _contents(out: Path) -> list[list[dict[str, Any]]]:
    return [read_shard_rows(out, shard) for shard in range(3)]


def test_a_rerun_rebuilds_only_the_shard_not_marked_done(local_ray: None, tmp_path: Path) -> None:
    inputs = _archive_set(tmp_path / "archive")
    out = tmp_path / "out"
    first = build_shards(inputs, out, ShardBuildOptions(tag_entities=False))
    assert first.built == (0, 1, 2) and first.articles == 5
    clean = _contents(out)
    times = {p: p.stat().st_mtime_ns for p in (out / "shards").rglob("*.parquet")}
    # A kill between the shard's last write and its marker: no marker, a partial file beside.
    (out / "done" / "000001.json").unlink()
    (out / "shards" / "000001" / "part-00000007.parquet").write_bytes(b"half a file")

    second = build_shards(inputs, out, ShardBuildOptions(tag_entities=False))

    assert second.built == (1,) and second.already_done == (0, 2) and second.articles == 1
    for path, before in times.items():
        assert (path.stat().st_mtime_ns == before) == ("000001" not in str(path)), path
    assert sorted(p.name for p in (out / "shards" / "000001").iterdir()) == ["part-00000000.parquet"]
    again = _contents(out)
    for ours, theirs in zip(again, clean, strict=True):
        for row, expected in zip(ours, theirs, strict=True):
            for key in ("sentence_vectors", "passage_vectors"):
                np.testing.assert_allclose(row.pop(key), expected.pop(key), atol=1e-6)
            assert row == expected


def test_split_and_write_stages_refuse_an_article_with_too_many_sentences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.index import shard_rows, shard_stages

    monkeypatch.setattr(shard_rows, "MAX_SENTENCES", 3)
    fields = [asdict(Article("short", "One. Two.")), asdict(Article("long", "One. Two. Three. Four."))]
    batch = pa.Table.from_pylist(
        [{"shard": 5, "article": article_id(5, i), **f} for i, f in enumerate(fields)]
    )
    split = shard_stages.split_batch(batch, 3, 2)
    vectors = shard_stages.EmbedBatch("unused", 8, 4, "cpu")(split)
    summary = shard_stages.write_batch(vectors, str(tmp_path)).to_pylist()
    assert summary == [
        {
            "shard": 5,
            "articles": 1,
            "sentences": 2,
            "passages": 1,
            "refused": ["article 'long' has 4 sentences, over the 3 one article may have"],
        }
    ]
    assert [row["doc_id"] for row in read_shard_rows(tmp_path, 5)] == ["short"]


def test_a_folder_is_cut_in_file_order_and_a_skipped_shard_is_not_read(tmp_path: Path) -> None:
    from qa.corpus.load import Problems

    shards = input_shards([CORPUS], 2, Problems())
    numbers = []
    for number, articles in shards:
        numbers.append(number)
        if number == 1:
            assert [a.doc_id for a in articles] == [p.stem for p in sorted(CORPUS.glob("*.txt"))[2:4]]
    assert numbers == [0, 1, 2]
    missing = tmp_path / "nothing.jsonl"
    with pytest.raises(CorpusError, match="does not exist"):
        input_shards([missing], 2, Problems())
    with pytest.raises(CorpusError, match="not an archive file"):
        input_shards([CORPUS, CORPUS / "sources.csv"], 2, Problems())


def test_cli_names_a_missing_input_and_ray_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qa", "build-shards", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2 and "qa: error: input" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    options = ShardBuildOptions(tag_entities=False, stand_in_dimension=8)
    with pytest.raises(ClusterError, match=r"pip install 'newsqa\[scale\]'"):
        build_shards([CORPUS], tmp_path / "o", options)


_WORDS = st.sampled_from(
    ["Mr", "Smith", "said", "4.00am", "$3.5m", "U.S.", "the", "vote", "\u201cNo.\u201d", "e.g."]
)
_SENTENCE = st.lists(_WORDS, min_size=1, max_size=12).map(" ".join)
_GAP = st.sampled_from([" ", "  ", "\n", "\n\n", ". ", "! ", "? ", " - ", "\t"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(_SENTENCE, _GAP), max_size=25),
    st.integers(0, 1 << 20),
    st.integers(0, MAX_SHARD_ROWS - 1),
    st.integers(1, 5),
    st.integers(1, 5),
)
def test_every_offset_maps_back_to_the_body(
    parts: list[tuple[str, str]], shard: int, row: int, size: int, stride: int
) -> None:
    body = "".join(sentence + gap for sentence, gap in parts)
    number = article_id(shard, row)
    split = split_article(number, Article("doc", body), size, stride)
    for s in split.sentences:
        assert body[s.start : s.end] == s.text and s.text.strip() == s.text
    first = sentence_id(number, 0)
    for pid, p in zip(split.passage_ids, split.passages, strict=True):
        assert body[p.start : p.end] == p.text
        assert pid >> 16 == number and p.first_sentence >> 16 == number
        window = split.sentences[p.first_sentence - first : p.last_sentence - first]
        assert (window[0].start, window[-1].end) == (p.start, p.end)
    if stride <= size:  # a wider stride leaves sentences out by design (qa.index.split)
        covered = {i for p in split.passages for i in range(p.first_sentence, p.last_sentence)}
        assert covered == {first + i for i in range(len(split.sentences))}
    assert number >> 24 == shard and number % MAX_SHARD_ROWS == row


def test_too_many_sentences_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa.index import shard_rows

    monkeypatch.setattr(shard_rows, "MAX_SENTENCES", 2)
    with pytest.raises(TooManySentences, match="3 sentences, over the 2"):
        split_article(0, Article("d", "One. Two. Three."), 3, 2)
    assert len(split_article(0, Article("d", "One. Two."), 3, 2).sentences) == 2
    with pytest.raises(ValueError, match="row must be"):
        article_id(0, MAX_SHARD_ROWS)


def test_loaded_shards_serve_a_thin_replica_that_answers_as_the_full_index(
    corpus_build: Path, engine: Engine, bundled_index: Path, tmp_path: Path
) -> None:
    pytest.importorskip("pymilvus")
    from qa.retrieval.milvus import connect as milvus_connect
    from qa.retrieval.milvus import serving_collection
    from qa.retrieval.shard_load import load_shards

    uri = str(tmp_path / "milvus.db")
    report = load_shards(corpus_build, uri, "newsqa_passages", progress=False)
    assert (report.articles, report.sentences, report.passages) == (5, 120, 59)
    replica = Engine.open(backend="milvus", uri=uri)
    for question in (
        "Who is the director of Auckland Pride?",
        "What did police offer the couple instead of an escort?",
        "How old is Joe Perrone?",
        "Who apologised to the man?",
        "Where did the attack happen?",
    ):
        found, expected = replica.ask(question), engine.ask(question)
        assert not found.abstained and not expected.abstained
        cited, wanted = found.answers[0].citations[0], expected.answers[0].citations[0]
        assert (found.answers[0].text, cited.doc_id, cited.start, cited.outlet, cited.date) == (
            expected.answers[0].text, wanted.doc_id, wanted.start, wanted.outlet, wanted.date
        )
    # BM25 statistics over the whole archive, as the local index counts them.
    local = load_index(bundled_index)
    remote = replica.live.current().data
    body = " ".join(a.body for a in local.live_articles().values())
    terms = set(local.lexical.terms(body))
    assert all(remote.lexical.doc_freq(t) == local.lexical.doc_freq(t) for t in terms)
    # A second load writes the other side and moves the aliases there.
    client = milvus_connect(uri)
    first = serving_collection(client, "newsqa_passages")
    load_shards(corpus_build, uri, "newsqa_passages", progress=False)
    assert serving_collection(client, "newsqa_passages") not in (None, first)
    assert replica.ask("Who is the director of Auckland Pride?").answers
