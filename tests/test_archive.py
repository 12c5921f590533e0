"""Archive corpora: a JSON Lines or CSV file of one article a row, read by ``load_corpus``.

Bad rows are reported by line and skipped, the rest load, citations carry the
row's metadata, and a corpus signature follows file metadata alone.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.corpus.archive import MAX_LINE_BYTES, derived_id
from qa.corpus.folder import MAX_ARTICLE_BYTES, corpus_signature, load_corpus
from qa.engine import Engine
from qa.errors import CorpusError
from qa.records import Article

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
# Outlet names the bundled articles get in the archives below, unlike those in
# sources.csv, so a citation can only have them from the archive's rows.
ARCHIVE_OUTLETS = {"NZ Herald": "Herald Archive", "1 NEWS": "One Archive", "Star Observer": "Star Archive"}


def _jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _row(**fields: object) -> str:
    return json.dumps(fields)


def _problems(path: Path) -> list[str]:
    return list(load_corpus(path).problems)


def _bundled_rows() -> list[dict[str, str]]:
    """The bundled articles as archive rows, with the outlets renamed."""
    return [
        {
            "text": a.body,
            "outlet": ARCHIVE_OUTLETS[a.outlet],
            "date": a.date,
            "title": a.title,
            "url": a.url,
            "id": a.doc_id,
        }
        for a in load_corpus(CORPUS).articles
    ]


def _write_csv(path: Path, columns: list[str], rows: list[list[str]], bom: bool = False) -> Path:
    # newline="" so the csv module writes the \r\n it chooses, and values' own line breaks, as they are.
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def test_jsonl_rows_become_articles_with_their_metadata_and_the_file_hash(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "articles.jsonl",
        _row(text="Body one.", outlet=" Herald ", date="2020-03-08", title="One", url="https://a/1", id="a1"),
        "",
        _row(body="Body two.", id=7),
        _row(text="Body three.", outlet=None, date="", title=None),
    )
    load = load_corpus(path)
    assert load.problems == () and load.skipped == 0
    assert load.articles[:2] == (
        Article("a1", "Body one.", "Herald", "2020-03-08", "One", "https://a/1"),
        Article("7", "Body two."),
    )
    third = load.articles[2]
    assert (third.outlet, third.date, third.title, third.url) == ("Unknown outlet", "undated", "", "")
    assert third.doc_id == derived_id("Body three.", "", "", "", "")
    assert load.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_csv_with_bom_crlf_and_quoted_line_breaks_loads_exactly(tmp_path: Path) -> None:
    body = 'First line, "quoted".\r\nSecond line\nthird.'
    path = _write_csv(
        tmp_path / "articles.csv",
        ["id", "body", "outlet", "date", "title", "url"],
        [["x", body, "Star", "2020-01-02", "T", "https://s/x"], ["", "Plain.", "", "", "", ""]],
        bom=True,
    )
    load = load_corpus(path)
    assert load.problems == ()
    assert load.articles[0] == Article("x", body, "Star", "2020-01-02", "T", "https://s/x")
    assert load.articles[1].doc_id == derived_id("Plain.", "", "", "", "")
    assert load.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_gzipped_archives_load_the_same_articles_and_hash_the_compressed_bytes(
    tmp_path: Path, suffix: str
) -> None:
    rows = _bundled_rows()
    plain = tmp_path / f"articles{suffix}"
    if suffix == ".jsonl":
        _jsonl(plain, *(json.dumps(r) for r in rows))
    else:
        _write_csv(plain, list(rows[0]), [list(r.values()) for r in rows])
    zipped = tmp_path / f"articles{suffix}.GZ"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    load = load_corpus(zipped)
    assert load.articles == load_corpus(plain).articles and len(load.articles) == 5
    assert load.fingerprint == hashlib.sha256(zipped.read_bytes()).hexdigest()


BAD_JSONL_ROWS = [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ("[1, 2]", "expected a JSON object, got an array"),
    ('"just text"', "expected a JSON object, got a string"),
    (_row(outlet="Herald"), "no 'text' or 'body'"),
    (_row(text="  \n "), "empty 'text'"),
    (_row(text=None, body=""), "empty 'body'"),
    (_row(text=["a"]), "'text' must be a string, got an array"),
    (_row(text="Body.", outlet=3), "'outlet' must be a string, got a number"),
    (_row(text="Body.", date=True), "'date' must be a string, got true/false"),
    (_row(text="Body.", id=1.5), "'id' must be a string or a whole number, got a number"),
    ('{"text": "Bad \\ud800 half"}', "'text' is not valid Unicode (a lone surrogate at character 5)"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_JSONL_ROWS)
def test_each_bad_jsonl_row_is_reported_by_line_and_skipped(tmp_path: Path, line: str, reason: str) -> None:
    path = _jsonl(tmp_path / "articles.jsonl", _row(text="Good one."), line, _row(text="Good two."))
    load = load_corpus(path)
    assert [a.body for a in load.articles] == ["Good one.", "Good two."]
    assert load.problems == (f"articles.jsonl line 2: {reason}; row skipped",)
    assert load.skipped == 1


def test_a_line_that_is_not_utf8_is_reported_and_the_next_lines_load(tmp_path: Path) -> None:
    path = tmp_path / "articles.jsonl"
    path.write_bytes(b'{"text": "Good."}\n{"text": "caf\xe9"}\n{"text": "Also good."}\n')
    load = load_corpus(path)
    assert [a.body for a in load.articles] == ["Good.", "Also good."]
    assert load.problems == ("articles.jsonl line 2: not UTF-8 text (bad byte at column 14); row skipped",)


def test_an_article_over_the_size_limit_is_skipped_and_a_longer_line_is_never_held(tmp_path: Path) -> None:
    big = "x" * (MAX_ARTICLE_BYTES + 1)
    path = tmp_path / "articles.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        handle.write(_row(text=big) + "\n")
        handle.write('{"text": "' + "y" * MAX_LINE_BYTES + '"}\n')
        handle.write(_row(text="Small.") + "\n")
    load = load_corpus(path)
    assert [a.body for a in load.articles] == ["Small."]
    assert load.problems == (
        "articles.jsonl line 1: 'text' is 5.0 MB, over the 5 MB limit for one article; row skipped",
        "articles.jsonl line 2: the line is 20 MB, over the 20 MB limit; row skipped",
    )
    assert load.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_date_indexes_the_article_undated_and_unknown_keys_are_reported_once(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "articles.jsonl",
        _row(text="One.", date="2020-13-01", author="A"),
        _row(text="Two.", author="B", section="News"),
        _row(text="Three.", author="C"),
    )
    load = load_corpus(path)
    assert [(a.body, a.date) for a in load.articles] == [
        ("One.", "undated"),
        ("Two.", "undated"),
        ("Three.", "undated"),
    ]
    assert load.skipped == 0
    assert load.problems == (
        "articles.jsonl: unknown field(s) ignored: 'author' (first on line 1), 'section' (first on line 2)",
        "articles.jsonl line 1: bad date '2020-13-01' (expected YYYY-MM-DD); indexed as undated",
    )


def test_duplicate_ids_and_duplicate_rows_keep_the_first(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "articles.jsonl",
        _row(text="First.", id="a"),
        _row(text="Second.", id=" a "),
        _row(text="Same.", outlet="X"),
        _row(text="Same.", outlet="X"),
        _row(text="Same.", outlet="Y"),
    )
    load = load_corpus(path)
    assert [(a.body, a.outlet) for a in load.articles] == [
        ("First.", "Unknown outlet"),
        ("Same.", "X"),
        ("Same.", "Y"),
    ]
    assert load.problems == (
        "articles.jsonl line 2: id 'a' is already used on line 1; row skipped",
        "articles.jsonl line 4: the same text and metadata as line 3; row skipped",
    )


def test_derived_ids_do_not_move_when_rows_are_inserted(tmp_path: Path) -> None:
    rows = [_row(text=f"Article {n}.", outlet="Herald") for n in range(3)]
    before = [a.doc_id for a in load_corpus(_jsonl(tmp_path / "a.jsonl", *rows)).articles]
    after = load_corpus(_jsonl(tmp_path / "b.jsonl", _row(text="New first."), rows[0], "", *rows[1:]))
    assert [a.doc_id for a in after.articles][1:] == before
    assert len(set(before)) == 3


def test_both_text_and_body_uses_text_and_says_so_once(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "a.csv", ["text", "body"], [["T1.", "B1."], ["T2.", "B2."]])
    load = load_corpus(path)
    assert [a.body for a in load.articles] == ["T1.", "T2."]
    assert load.problems == (
        "a.csv: rows have both 'text' and 'body' (first on line 2); 'text' is used, 'body' ignored",
    )


def test_bad_csv_rows_are_reported_by_their_first_line(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(
        b"text,outlet,date\n"
        b'"Two\nlines.",Herald,2020-01-01\n'  # lines 2-3
        b"Too,many,values,here\n"  # line 4
        b"\n"  # line 5, blank: not a row
        b",Herald,2020-01-01\n"  # line 6
        b'"Spans\nbad \xff line",Herald,\n'  # lines 7-8, line 8 not UTF-8
        b"Last.,Post,2020-02-30\n"  # line 9
    )
    load = load_corpus(path)
    assert [(a.body, a.date) for a in load.articles] == [("Two\nlines.", "2020-01-01"), ("Last.", "undated")]
    assert load.problems == (
        "a.csv line 4: 4 value(s), but the header has 3 column(s); row skipped",
        "a.csv line 6: empty 'text'; row skipped",
        "a.csv line 8: not UTF-8 text (bad byte at column 5); row skipped",
        "a.csv line 9: bad date '2020-02-30' (expected YYYY-MM-DD); indexed as undated",
    )
    assert load.skipped == 3


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("a.jsonl", b"", "a.jsonl is empty: no article row"),
        ("a.jsonl", b"\n  \n", "a.jsonl is empty: no article row"),
        ("a.csv", b"", "a.csv is empty: no article row"),
        ("a.csv", b"text,outlet\n", "a.csv is empty: no article row"),
        (
            "a.csv",
            b"title,outlet\nT,O\n",
            "a.csv line 1: the header needs a 'text' or 'body' column; it has title, outlet",
        ),
        (
            "a.csv",
            b"text,url,url\nT,u,v\n",
            "a.csv line 1: column\\(s\\) 'url' appear more than once; name each column once",
        ),
        (
            "a.jsonl",
            b'{"text": ""}\n[]\n',
            "no usable article in .+a.jsonl \\(2 row\\(s\\) skipped; first: a.jsonl line 1",
        ),
        ("a.jsonl.gz", b"not gzip at all", "cannot read .+a.jsonl.gz: Not a gzipped file"),
        ("a.csv.gz", gzip.compress(b"text\nOne.\n")[:-12], "cannot unzip .+a.csv.gz: Compressed file ended"),
        (
            "a.txt",
            b"text\n",
            "is neither a folder nor an archive file; .+ending .jsonl, .jsonl.gz, .csv, .csv.gz",
        ),
    ],
)
def test_an_archive_with_nothing_to_load_is_a_corpus_error(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)


def test_missing_paths_are_named_as_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"corpus file not found: .+gone\.jsonl"):
        load_corpus(tmp_path / "gone.jsonl")
    with pytest.raises(CorpusError, match=r"corpus folder not found: .+gone"):
        load_corpus(tmp_path / "gone")


_BODIES = st.lists(
    st.text(min_size=1, max_size=200).filter(lambda text: text.strip() != ""), min_size=1, max_size=5
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=_BODIES)
def test_any_body_text_round_trips_exactly_through_jsonl_and_csv(tmp_path: Path, bodies: list[str]) -> None:
    jsonl = _jsonl(tmp_path / "a.jsonl", *(_row(text=body, id=n) for n, body in enumerate(bodies)))
    table = _write_csv(tmp_path / "a.csv", ["id", "text"], [[str(n), body] for n, body in enumerate(bodies)])
    for path in (jsonl, table):
        load = load_corpus(path)
        assert load.problems == ()
        assert [a.body for a in load.articles] == bodies


def test_signature_of_a_folder_follows_names_sizes_and_times_only(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("One.", encoding="utf-8")
    (tmp_path / "sources.csv").write_text("file,outlet,date,title,url\n", encoding="utf-8")
    first = corpus_signature(tmp_path)
    assert corpus_signature(tmp_path) == first
    (tmp_path / ".hidden").write_text("ignored")
    assert corpus_signature(tmp_path) == first

    stat = (tmp_path / "a.txt").stat()
    (tmp_path / "a.txt").write_text("Two.", encoding="utf-8")  # same size, then the old time back
    os.utime(tmp_path / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert corpus_signature(tmp_path) == first, "content is never read"

    seen = {first}
    os.utime(tmp_path / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched
    seen.add(corpus_signature(tmp_path))
    (tmp_path / "a.txt").write_text("Three.", encoding="utf-8")  # resized
    os.utime(tmp_path / "a.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    seen.add(corpus_signature(tmp_path))
    (tmp_path / "b.txt").write_text("New.", encoding="utf-8")  # added
    seen.add(corpus_signature(tmp_path))
    (tmp_path / "sources.csv").unlink()  # removed
    seen.add(corpus_signature(tmp_path))
    assert len(seen) == 5


def test_signature_of_an_archive_follows_its_size_and_time(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "a.jsonl", _row(text="One."))
    stat = path.stat()
    first = corpus_signature(path)
    assert corpus_signature(path) == first
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = corpus_signature(path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(_row(text="Two.") + "\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert len({first, touched, corpus_signature(path)}) == 3
    folder = tmp_path / "folder"
    folder.mkdir()
    os.link(path, folder / "a.jsonl")
    assert corpus_signature(folder) != corpus_signature(path), "a folder of one archive is another corpus"
    with pytest.raises(CorpusError, match="corpus file not found"):
        corpus_signature(tmp_path / "gone.jsonl")
    with pytest.raises(CorpusError, match="neither a folder nor an archive file"):
        corpus_signature(_jsonl(tmp_path / "a.txt", "x"))


@pytest.fixture(scope="module", params=["jsonl", "csv"])
def archive_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A real engine built from the bundled articles as one archive file of each kind."""
    folder = tmp_path_factory.mktemp(f"archive-{request.param}")
    rows = _bundled_rows()
    if request.param == "jsonl":
        path = _jsonl(folder / "articles.jsonl", *(json.dumps(r) for r in rows))
    else:
        # "body" for the text, and no id: each is derived from its row.
        columns = ["outlet", "date", "title", "url"]
        path = _write_csv(
            folder / "articles.csv", ["body", *columns], [[r["text"], *(r[c] for c in columns)] for r in rows]
        )
    return Engine.open(path, folder / "index", progress=False)


def test_answers_from_an_archive_cite_the_rows_outlet_date_title_and_url(archive_engine: Engine) -> None:
    rows = {row["text"]: row for row in _bundled_rows()}
    result = archive_engine.ask("Who is the director of Auckland Pride?")
    assert not result.abstained and "Max Tweedie" in result.answers[0].text
    assert (result.answers[0].citations[0].outlet, result.answers[0].citations[0].date) == (
        "One Archive",
        "2020-03-09",
    )
    for answer in result.answers:
        for citation in answer.citations:
            article = archive_engine.article(citation.doc_id)
            row = rows[article.body]
            assert (citation.outlet, citation.date, citation.title, citation.url) == (
                row["outlet"],
                row["date"],
                row["title"],
                row["url"],
            )
            assert article.body[citation.start : citation.end] == citation.text
    assert archive_engine.outlets == ("Herald Archive", "One Archive", "Star Archive")


def test_the_cli_names_a_bad_archive_in_one_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "a.jsonl", "[]", _row(text=""))
    done = subprocess.run(
        [sys.executable, "-m", "qa", "index", "--corpus", str(path), "--index", str(tmp_path / "i")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("qa: error:")] == [
        f"qa: error: no usable article in {path} (2 row(s) skipped; first: a.jsonl line 1: "
        "expected a JSON object, got an array; row skipped)"
    ]
