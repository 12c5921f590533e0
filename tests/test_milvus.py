"""The Milvus backend on milvus-lite: the same runs and answers as the embedded FAISS + tantivy default."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the Milvus backend needs the scale extra: pip install '.[scale]'")

from conftest import CORPUS, ROOT

from qa.cli import main
from qa.corpus.folder import split_date_prefix
from qa.engine import Engine
from qa.errors import IndexStoreError, InputError
from qa.index.store import IndexData, load_index
from qa.records import Answer, Result
from qa.retrieval.backend import choose_backend
from qa.retrieval.milvus import (
    FLAT_MAX_ROWS,
    MilvusRetriever,
    _bring_up_to_date,
    check_target,
    connect,
    dense_index_type,
    filter_expression,
    live_passage_ids,
    passage_vectors,
    query_text,
    quote,
    serving_collection,
    sync_collection,
)
from qa.retrieval.milvus_cluster import ClusterOptions
from qa.retrieval.retriever import LocalRetriever, PassageFilter, QueryFilters

# An outlet name that would end a naively quoted string and widen the filter.
TRICKY_OUTLET = 'Star "Observer" \\ or outlet != "'
FILTERS = (
    QueryFilters(),
    QueryFilters(outlets=("1 NEWS",)),
    QueryFilters(outlets=("NZ Herald", "Star Observer")),
    QueryFilters(since="2020-03-09"),
    QueryFilters(until="2020-03-08"),
    QueryFilters(outlets=("1 NEWS",), since="2020-03-09", until="2020-03-09"),
    QueryFilters(since="2021-01-01"),
)


def local_retriever(data: IndexData) -> LocalRetriever:
    return LocalRetriever(data, PassageFilter(data, data.outlets))


@pytest.fixture(scope="module")
def bundled(bundled_index: Path) -> IndexData:
    return load_index(bundled_index)


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One milvus-lite file for the module: one client per file, as milvus-lite locks it."""
    return str(tmp_path_factory.mktemp("milvus") / "newsqa.db")


@pytest.fixture(scope="module")
def milvus_engine(bundled_index: Path, lite_uri: str) -> Engine:
    """The bundled corpus's engine retrieving from milvus-lite, loaded as `qa index` does."""
    return Engine.open(CORPUS, bundled_index, progress=False, backend="milvus", uri=lite_uri, sync=True)


@pytest.fixture(scope="module")
def retriever(milvus_engine: Engine, lite_uri: str) -> MilvusRetriever:
    return MilvusRetriever(connect(lite_uri), "newsqa_passages")


@pytest.fixture(scope="module")
def second_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three bundled articles under other sources: a quoted outlet name and an undated article."""
    folder = tmp_path_factory.mktemp("second") / "corpus"
    folder.mkdir()
    rows = [
        ("001_2879f98caf0dd501.txt", TRICKY_OUTLET, "2020-03-08"),
        ("002_f5cbbc7b4e1b3f9f.txt", "Star Observer", "2020-03-11"),
        ("004_7ea3a471efd226e9.txt", "1 NEWS", ""),
    ]
    with (folder / "sources.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "outlet", "date", "title", "url"])
        for name, outlet, date in rows:
            # The bundled files open with their date: drop it where the article is to be undated.
            body = (CORPUS / name).read_text(encoding="utf-8")
            (folder / name).write_text(body if date else split_date_prefix(body)[1], encoding="utf-8")
            writer.writerow([name, outlet, date, "", ""])
    return folder


@pytest.fixture(scope="module")
def second_index(second_corpus: Path) -> Path:
    index_dir = second_corpus.parent / "index"
    Engine.open(second_corpus, index_dir, progress=False, reader="none")
    return index_dir


def assert_same_run(local: list[tuple[int, float]], milvus: list[tuple[int, float]]) -> None:
    assert [pid for pid, _ in milvus] == [pid for pid, _ in local]
    assert np.allclose([s for _, s in milvus], [s for _, s in local], atol=1e-4)


# --- pure functions -----------------------------------------------------------------


def test_filter_expression_spells_each_filter() -> None:
    assert filter_expression(QueryFilters()) == ""
    assert (
        filter_expression(QueryFilters(outlets=("1 NEWS", "NZ Herald")))
        == 'outlet in ["1 NEWS", "NZ Herald"]'
    )
    # A date range leaves undated articles (date 0) out, as the local backend does.
    assert (
        filter_expression(QueryFilters(since="2020-03-09", until="2020-03-10"))
        == "date > 0 and date >= 20200309 and date <= 20200310"
    )
    assert filter_expression(QueryFilters(until="2020-03-10")) == "date > 0 and date <= 20200310"


def test_quote_escapes_what_would_end_the_string() -> None:
    assert quote("1 NEWS") == '"1 NEWS"'
    assert quote(TRICKY_OUTLET) == '"Star \\"Observer\\" \\\\ or outlet != \\""'
    assert quote("a\nb\tc\rd") == '"a\\nb\\tc\\rd"'


def test_query_text_repeats_terms_by_weight() -> None:
    # 1.0 -> 5 copies, the history weight 0.6 -> 3; a term in both keeps its larger weight.
    text = query_text([("polic", 1.0), ("train", 1.0), ("director", 0.6), ("polic", 0.6)])
    assert text.split() == ["polic"] * 5 + ["train"] * 5 + ["director"] * 3
    assert query_text([("faint", 0.01), ("zero", 0.0)]).split() == ["faint"]
    assert query_text([]) == ""


@pytest.mark.parametrize(
    "uri", ["milvus", "index/milvus.sqlite", "ftp://host:19530", "http://host", "http://a b:1"]
)
def test_a_uri_that_is_neither_a_db_file_nor_a_server_url_is_refused(uri: str) -> None:
    with pytest.raises(InputError, match=r"\.db .*http\(s\)://host:port"):
        check_target(uri)


def test_collection_names_milvus_cannot_take_are_refused() -> None:
    check_target("x.db", "newsqa_passages")
    check_target("https://milvus.example:443", "_p2")
    for name in ("1abc", "news-qa", "", "a" * 256):
        with pytest.raises(InputError, match="--collection"):
            check_target("x.db", name)


# --- milvus-lite against the embedded default ----------------------------------------


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: filter_expression(f) or "none")
def test_dense_run_equals_the_local_one(
    filters: QueryFilters, bundled: IndexData, retriever: MilvusRetriever
) -> None:
    local = local_retriever(bundled)
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(bundled.dense.d).astype(np.float32)
    queries = [*passage_vectors(bundled, np.array([0, 23, 58])), noise / np.linalg.norm(noise)]
    for vector in queries:
        expected = local.dense(vector, 50, filters)
        assert_same_run(expected, retriever.dense(vector, 50, filters))
    if filters == QueryFilters(since="2021-01-01"):
        assert expected == []


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: filter_expression(f) or "none")
def test_bm25_run_matches_the_same_passages(
    filters: QueryFilters, bundled: IndexData, retriever: MilvusRetriever
) -> None:
    """Same terms, same passages matched. Scores differ slightly: tantivy stores each
    passage's length in one lossy byte, Milvus exactly (docs/scaling.md)."""
    local = local_retriever(bundled)
    terms = [(t, 1.0) for t in bundled.lexical.terms("Why did the police refuse to escort the couple home?")]
    expected = local.lexical(terms, 100, filters)
    found = retriever.lexical(terms, 100, filters)
    assert {pid for pid, _ in found} == {pid for pid, _ in expected}
    if expected:
        assert found[0][0] == expected[0][0]


def _lead(answer: Answer) -> tuple[str, str, int]:
    return answer.text, answer.citations[0].doc_id, answer.citations[0].start


def top_answer(result: Result) -> tuple[str, str, int] | None:
    if result.abstained:
        return None
    answer = result.answers[0]
    return answer.text, answer.citations[0].doc_id, answer.citations[0].start


def test_dev_questions_get_the_same_top_answer(engine: Engine, milvus_engine: Engine) -> None:
    """Milvus's BM25 rounds lengths where tantivy does not, so fused passage scores differ a little.

    The answer combiner (qa.answer.combiner) weighs the passage score heavily,
    so such a difference can swap two answers: a differing question must have
    the other backend's top answer second. Measured with the combiner: 54 of
    the 55 dev questions give the same top answer, as with the old fixed blend,
    but the swapped pair (q47) is 0.55 against 0.44, where it was 0.0001 apart.
    """
    questions = [json.loads(line) for line in (ROOT / "data/eval/questions.jsonl").read_text().splitlines()]
    differing = []
    for q in questions:
        local = engine.ask(q["question"], history=q.get("history", []))
        milvus = milvus_engine.ask(q["question"], history=q.get("history", []))
        assert local.abstained == milvus.abstained, q["id"]
        if top_answer(local) == top_answer(milvus):
            continue
        differing.append(q["id"])
        assert top_answer(milvus) in [_lead(a) for a in local.answers[:2]], q["id"]
        assert top_answer(local) in [_lead(a) for a in milvus.answers[:2]], q["id"]
    assert len(differing) <= 1, differing  # measured: q47 alone


def test_a_quoted_outlet_name_filters_exactly_and_cannot_widen_the_filter(
    second_index: Path, lite_uri: str
) -> None:
    data = load_index(second_index)
    client = connect(lite_uri)
    sync_collection(client, data, "tricky", progress=False)
    milvus = MilvusRetriever(client, "tricky")
    local = local_retriever(data)
    vector = passage_vectors(data, np.array([0]))[0]
    only_tricky = QueryFilters(outlets=(TRICKY_OUTLET,))
    found = milvus.dense(vector, 50, only_tricky)
    assert_same_run(local.dense(vector, 50, only_tricky), found)
    owners = {data.article(int(data.passages[pid][0])).outlet for pid, _ in found}
    assert owners == {TRICKY_OUTLET}
    # Injection attempt: a name that, pasted raw, would match every passage.
    assert milvus.dense(vector, 50, QueryFilters(outlets=('x" or date >= 0 or outlet == "',))) == []
    # The undated article is in no date range, but in an outlet filter.
    dated = milvus.dense(vector, 50, QueryFilters(since="2000-01-01"))
    assert_same_run(local.dense(vector, 50, QueryFilters(since="2000-01-01")), dated)
    assert len(dated) < len(live_passage_ids(data))


def test_resync_replaces_the_passages_and_a_current_collection_is_left_alone(
    bundled: IndexData, second_index: Path, lite_uri: str
) -> None:
    second = load_index(second_index)
    client = connect(lite_uri)
    first = sync_collection(client, bundled, "resync", progress=False)
    assert (first.written, first.deleted, first.rows) == (len(bundled.passages), 0, len(bundled.passages))
    again = sync_collection(client, bundled, "resync", progress=False)
    assert not again.changed and again.rows == len(bundled.passages)

    report = sync_collection(client, second, "resync", progress=False)
    assert report.rows == len(second.passages)
    # The collection being served is left alone: the other side, empty so far, gets the second build,
    # then the alias moves to it.
    assert (report.written, report.deleted) == (len(second.passages), 0)
    assert serving_collection(client, "resync") == "resync_green"
    assert client.query("resync_blue", filter="", output_fields=["count(*)"])[0]["count(*)"] == len(
        bundled.passages
    )
    milvus = MilvusRetriever(client, "resync")
    vector = passage_vectors(second, np.array([1]))[0]
    assert_same_run(
        local_retriever(second).dense(vector, 100, QueryFilters()), milvus.dense(vector, 100, QueryFilters())
    )

    back = sync_collection(client, bundled, "resync", progress=False)
    # The blue side still holds the bundled build: nothing is written, only the alias moves back,
    # and a retriever opened on the alias before the move now reads it.
    assert not back.changed and back.rows == len(bundled.passages)
    assert serving_collection(client, "resync") == "resync_blue"
    vector = passage_vectors(bundled, np.array([40]))[0]
    assert_same_run(
        local_retriever(bundled).dense(vector, 100, QueryFilters()), milvus.dense(vector, 100, QueryFilters())
    )


def test_a_collection_synced_before_aliases_is_adopted_without_reloading(
    bundled: IndexData, lite_uri: str
) -> None:
    client = connect(lite_uri)
    # What a sync wrote before the alias scheme: a real collection under the serving name.
    _bring_up_to_date(client, bundled, "legacy", progress=False)
    report = sync_collection(client, bundled, "legacy", progress=False)
    assert not report.changed and report.rows == len(bundled.passages)
    assert serving_collection(client, "legacy") == "legacy_blue"
    vector = passage_vectors(bundled, np.array([3]))[0]
    assert_same_run(
        local_retriever(bundled).dense(vector, 20, QueryFilters()),
        MilvusRetriever(client, "legacy").dense(vector, 20, QueryFilters()),
    )


def test_a_collection_of_another_build_or_none_is_refused_with_the_command_to_fix_it(
    bundled_index: Path, second_index: Path, lite_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = connect(lite_uri)
    sync_collection(client, load_index(second_index), "other_build", progress=False)
    with pytest.raises(IndexStoreError, match=r"does not hold this index build.*qa index --backend milvus"):
        Engine.open(
            CORPUS, bundled_index, progress=False, backend="milvus", uri=lite_uri, collection="other_build"
        )
    status = main(
        [
            "ask",
            "Who?",
            "--corpus",
            str(CORPUS),
            "--index",
            str(bundled_index),
            "--backend",
            "milvus",
            "--uri",
            lite_uri,
            "--collection",
            "never_loaded",
        ]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert "no collection 'never_loaded'" in error
    assert f"qa index --backend milvus --uri {lite_uri} --collection never_loaded" in error


def test_the_dense_index_follows_the_size_and_a_change_of_it_moves_the_alias(
    bundled: IndexData, lite_uri: str
) -> None:
    assert dense_index_type(FLAT_MAX_ROWS) == "FLAT"
    assert dense_index_type(FLAT_MAX_ROWS + 1) == "HNSW"
    client = connect(lite_uri)
    sync_collection(client, bundled, "sized", progress=False, index_type="HNSW")
    assert client.describe_index("sized_blue", "vector")["index_type"] == "HNSW"
    vector = passage_vectors(bundled, np.array([7]))[0]
    expected = {pid for pid, _ in local_retriever(bundled).dense(vector, 10, QueryFilters())}
    milvus = MilvusRetriever(client, "sized")
    assert {pid for pid, _ in milvus.dense(vector, 10, QueryFilters())} == expected
    # The same build, but the size calls for FLAT: the other side is made with it and served.
    report = sync_collection(client, bundled, "sized", progress=False)
    assert report.written == len(bundled.passages)
    assert serving_collection(client, "sized") == "sized_green"
    assert client.describe_index("sized_green", "vector")["index_type"] == "FLAT"
    assert {pid for pid, _ in milvus.dense(vector, 10, QueryFilters())} == expected


# --- cluster options ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "options", "message"),
    [
        ("index/m.db", ClusterOptions(token="root:Milvus"), "--token: for a Milvus server URL"),
        ("index/m.db", ClusterOptions(db_name="news"), "--db-name: for a Milvus server URL"),
        ("http://milvus:19530", ClusterOptions(ca_file="ca.pem"), "give an https:// URI"),
        ("https://milvus:19530", ClusterOptions(ca_file="/no/such/ca.pem"), "not a readable file"),
        ("http://milvus:19530", ClusterOptions(db_name="news-2020"), "--db-name must be"),
        ("http://milvus:19530", ClusterOptions(shards=0), "--shards must be between 1 and 16"),
        ("http://milvus:19530", ClusterOptions(shards=17), "--shards must be between 1 and 16"),
        ("index/m.db", ClusterOptions(replicas=0), "--replicas must be between 1 and 100"),
    ],
)
def test_cluster_options_a_uri_cannot_take_are_refused(
    uri: str, options: ClusterOptions, message: str
) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        check_target(uri, "newsqa_passages", options)


def test_cluster_options_reach_the_client_and_the_collection(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    options = ClusterOptions(token="root:Milvus", ca_file=str(ca), db_name="news", shards=4, replicas=2)
    check_target("https://milvus.internal:19530", "newsqa_passages", options)
    assert options.client_options("from-env") == {
        "token": "root:Milvus",
        "db_name": "news",
        "secure": True,
        "server_pem_path": str(ca),
    }
    assert ClusterOptions().client_options("from-env") == {"token": "from-env"}
    assert options.creation() == {"num_shards": 4} and ClusterOptions().creation() == {}


def test_cluster_options_need_the_milvus_backend(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match="need --backend milvus"):
        choose_backend("local", None, None, ClusterOptions(shards=2))
    assert main(["ask", "Who?", "--replicas", "2"]) == 1
    assert "need --backend milvus" in capsys.readouterr().err


def test_a_sync_publishes_every_collection_loaded_with_the_replicas_asked(
    bundled: IndexData, lite_uri: str
) -> None:
    client = connect(lite_uri)
    sync_collection(client, bundled, "replicated", progress=False, options=ClusterOptions(replicas=1))
    side = serving_collection(client, "replicated")
    for kind in ("", "_articles", "_sentences", "_terms"):
        assert str(client.get_load_state(side + kind)["state"]) == "Loaded"
        assert client.describe_alias("replicated" + kind)["collection_name"] == side + kind
