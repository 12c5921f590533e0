"""Bad input gets a clear answer: odd corpora, unusable paths and models, as a user meets them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qa.corpus.folder import MAX_ARTICLE_BYTES, load_corpus
from qa.index.store import load_index

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
ARTICLE = "001_2879f98caf0dd501.txt"


def _qa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def _one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit status 2 and a single ``qa: error:`` line holding every fragment."""
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("qa: error:")]
    assert len(errors) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_odd_corpus_files_and_rows_are_reported_by_name_and_the_rest_indexed(tmp_path: Path) -> None:
    corpus = tmp_path / "my corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / ARTICLE, corpus / "police apology é.txt")
    (corpus / "Gespräch über Ärger.txt").write_text("Der Bürgermeister sprach am Montag.", encoding="utf-8")
    with (corpus / "huge.txt").open("wb") as huge:  # 50 MB, sparse: never held in memory here
        huge.truncate(50 * 2**20)
    (corpus / "sources.csv").write_text(
        "file,outlet,date,notes\n"
        "police apology é.txt,1 NEWS,2020-03-09,a note\n"
        "police apology é.txt,1 NEWS,2020-03-09,a note\n"
        "Gespräch über Ärger.txt,Die Zeit,2020-03-10,x,surplus\n",
        encoding="utf-8",
    )
    load = load_corpus(corpus)
    assert {a.doc_id: (a.outlet, a.date) for a in load.articles} == {
        "police apology é": ("1 NEWS", "2020-03-09"),
        "Gespräch über Ärger": ("Die Zeit", "2020-03-10"),
    }
    text = "\n".join(load.problems)
    assert f"skipped huge.txt: 50 MB is over the {MAX_ARTICLE_BYTES // 2**20} MB limit" in text
    assert "unknown column notes, ignored" in text
    assert "row 3: police apology é.txt listed again" in text
    assert "row 4: 1 value(s) past the last column, ignored" in text

    done = _qa("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"))
    assert done.returncode == 3, done.stderr  # indexed, with something skipped
    assert "index" in done.stdout and "2 articles" in done.stdout
    assert "4 corpus problem(s) reported above" in done.stdout
    assert "qa: skipped huge.txt" in done.stderr and "Traceback" not in done.stderr
    indexed = load_index(tmp_path / "index").live_articles()
    assert sorted(indexed) == ["Gespräch über Ärger", "police apology é"]


def test_a_corpus_with_no_article_is_a_usage_error(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "sources.csv").write_text("file,outlet,date,title,url\n", encoding="utf-8")
    _one_line_error(
        _qa("index", "--corpus", str(corpus), "--index", str(tmp_path / "i")),
        "no usable article",
        str(corpus),
    )


@pytest.mark.parametrize("where", ["corpus", "index"])
def test_paths_that_do_not_exist_or_cannot_be_written_name_what_and_where(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    if where == "corpus":
        missing = tmp_path / "no such corpus"
        _one_line_error(
            _qa("index", "--corpus", str(missing), "--index", str(tmp_path / "i")),
            "corpus folder not found",
            str(missing),
        )
    else:
        unwritable = blocker / "index"  # below a file: no one can create it
        _one_line_error(_qa("index", "--index", str(unwritable)), "index", str(unwritable))


def test_an_index_path_holding_other_files_is_refused_not_replaced(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    # The corpus given as the index by mistake: a build would swap it away.
    _one_line_error(
        _qa("index", "--corpus", str(corpus), "--index", str(corpus)), "not a newsqa index", str(corpus)
    )
    assert sorted(p.name for p in corpus.iterdir()) == sorted(p.name for p in CORPUS.iterdir())


def test_a_model_that_cannot_be_loaded_offline_is_a_usage_error(tmp_path: Path) -> None:
    done = _qa(
        "index", "--index", str(tmp_path / "i"), "--model", "sentence-transformers/not-on-this-machine"
    )
    _one_line_error(done, "cannot load embedding model", "sentence-transformers/not-on-this-machine")
