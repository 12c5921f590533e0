"""Corpus loading: metadata precedence and loud, non-fatal handling of bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.corpus.folder import load_corpus, split_date_prefix
from qa.errors import CorpusError

ROOT = Path(__file__).resolve().parent.parent


def _write(folder: Path, name: str, data: bytes | str) -> None:
    path = folder / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


def test_date_prefix_is_parsed_and_kept_out_of_the_body() -> None:
    assert split_date_prefix(" date 2020-03-08 A man has tearfully") == ("2020-03-08", "A man has tearfully")
    assert split_date_prefix("No prefix here.") == (None, "No prefix here.")
    assert split_date_prefix(" date 2020-02-30 Bad day.") == (None, "Bad day.")


def test_bundled_corpus_matches_sources_csv() -> None:
    load = load_corpus(ROOT / "data" / "corpus")
    assert load.skipped == 0 and load.problems == ()
    by_id = {a.doc_id: a for a in load.articles}
    assert len(by_id) == 5
    star = by_id["002_f5cbbc7b4e1b3f9f"]
    assert (star.outlet, star.date) == ("Star Observer", "2020-03-11")
    assert star.title == "Wellington Police refuse to escort couple after attack"
    assert not star.body.startswith("date")
    assert by_id["000_3aa418e33fff14e7"].body.startswith("A Wellington man who says")


def test_sources_csv_wins_over_the_prefix_and_missing_metadata_is_named(tmp_path: Path) -> None:
    _write(tmp_path, "a.txt", " date 2020-01-01 Body of a.")
    _write(tmp_path, "b.txt", "Body of b, no metadata anywhere.")
    _write(tmp_path, "sources.csv", "file,outlet,date,title,url\na.txt,The Post,2021-05-06,,\n")
    by_id = {a.doc_id: a for a in load_corpus(tmp_path).articles}
    assert (by_id["a"].outlet, by_id["a"].date) == ("The Post", "2021-05-06")
    assert (by_id["b"].outlet, by_id["b"].date) == ("Unknown outlet", "undated")


def test_bad_files_are_skipped_with_their_names_and_bad_rows_with_row_numbers(tmp_path: Path) -> None:
    _write(tmp_path, "good.txt", "A good article. It loads.")
    _write(tmp_path, "image.txt", b"\x89PNG\r\n\x1a\n\x00\x00")
    _write(tmp_path, "latin1.txt", "caf\u00e9 au lait".encode("latin-1"))
    _write(tmp_path, "empty.txt", "   \n")
    _write(
        tmp_path,
        "sources.csv",
        "file,outlet,date,title,url\ngood.txt,Herald,2020-13-01,,\nghost.txt,Herald,2020-01-01,,\n",
    )
    load = load_corpus(tmp_path)
    assert [a.doc_id for a in load.articles] == ["good"]
    assert load.skipped == 3
    text = "\n".join(load.problems)
    assert "skipped image.txt: binary" in text
    assert "skipped latin1.txt: not UTF-8" in text
    assert "skipped empty.txt: empty" in text
    assert "row 2: bad date '2020-13-01'" in text
    assert "ghost.txt is listed but no such file" in text
    assert load.articles[0].date == "undated"


def test_a_folder_with_no_usable_article_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "empty.txt", "")
    with pytest.raises(CorpusError, match="no usable article"):
        load_corpus(tmp_path)
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "missing")


def test_fingerprint_changes_with_content_and_metadata(tmp_path: Path) -> None:
    _write(tmp_path, "a.txt", "One. Two.")
    first = load_corpus(tmp_path).fingerprint
    assert load_corpus(tmp_path).fingerprint == first
    _write(tmp_path, "sources.csv", "file,outlet,date,title,url\na.txt,X,,,\n")
    second = load_corpus(tmp_path).fingerprint
    _write(tmp_path, "a.txt", "One. Three.")
    assert len({first, second, load_corpus(tmp_path).fingerprint}) == 3
