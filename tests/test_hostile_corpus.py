"""A corpus from someone else: it cannot leak files through symlinks, smuggle control
characters into metadata, or make every command print (and store) a million problems."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from qa.corpus.folder import corpus_signature, load_corpus
from qa.engine import Engine
from qa.index.store import load_index
from qa.records import UNKNOWN_OUTLET

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
ARTICLE = "001_2879f98caf0dd501.txt"
SECRET = "The vault under the old lighthouse opens with the code 4417, the keeper said on Monday."
# Any control character but tab, line feed and carriage return: none may reach a field or a message.
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _qa(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def _corpus_with_a_secret_outside(tmp_path: Path) -> Path:
    """A corpus of one article, and ``secret.txt`` in it: a link to a file beside the corpus folder."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / ARTICLE, corpus / ARTICLE)
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.txt").write_text(SECRET, encoding="utf-8")
    (corpus / "secret.txt").symlink_to(private / "secret.txt")
    return corpus


def test_a_symlink_out_of_the_corpus_is_skipped_named_and_never_cited(tmp_path: Path) -> None:
    corpus = _corpus_with_a_secret_outside(tmp_path)
    (corpus / "relative.txt").symlink_to(Path("..") / "private" / "secret.txt")
    links = ["relative.txt", "secret.txt"]
    if Path("/etc/passwd").is_file():
        (corpus / "passwd.txt").symlink_to("/etc/passwd")
        links.append("passwd.txt")
    index = tmp_path / "index"

    done = _qa("index", "--corpus", corpus, "--index", index)
    assert done.returncode == 3, done.stderr  # indexed, with something skipped
    for name in links:
        assert f"qa: skipped {name}: a symlink to a file outside the corpus folder" in done.stderr
    assert "1 articles" in done.stdout and f"{len(links)} corpus problem(s)" in done.stdout
    assert sorted(load_index(index).live_articles()) == [Path(ARTICLE).stem]

    asked = _qa("ask", "root daemon bin nologin vault code keeper", "-c", corpus, "-i", index, "--json")
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert "4417" not in asked.stdout and "root:x:0" not in asked.stdout
    assert {c["doc_id"] for a in answer["answers"] for c in a["citations"]} <= {Path(ARTICLE).stem}
    # The index vouches for the corpus, so it is not read again, but the skip is told on every start.
    for name in links:
        assert f"qa: skipped {name}: a symlink" in asked.stderr


def test_a_symlink_to_a_file_inside_the_corpus_is_indexed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "drafts").mkdir(parents=True)
    shutil.copy(CORPUS / ARTICLE, corpus / "drafts" / "story.txt")
    (corpus / "story.txt").symlink_to(Path("drafts") / "story.txt")
    (corpus / "also.txt").symlink_to(corpus / "drafts" / "story.txt")  # an absolute link, still inside
    (corpus / "sources.csv").write_text("file,outlet,date\nstory.txt,1 NEWS,2020-03-08\n", encoding="utf-8")
    via = tmp_path / "via"
    via.symlink_to(corpus)  # the corpus folder itself named through a link
    for path in (corpus, via):
        load = load_corpus(path)
        assert load.problems == () and load.skipped == 0
        assert {a.doc_id: a.outlet for a in load.articles} == {"also": UNKNOWN_OUTLET, "story": "1 NEWS"}


def test_follow_symlinks_indexes_a_link_out_of_the_corpus_until_it_is_dropped(tmp_path: Path) -> None:
    corpus = _corpus_with_a_secret_outside(tmp_path)
    index = tmp_path / "index"
    done = _qa("index", "--follow-symlinks", "--corpus", corpus, "--index", index)
    assert done.returncode == 0, done.stderr
    assert "secret" in load_index(index).live_articles()

    # Opened without the option, the same files are another corpus: the link's text leaves the index.
    engine = Engine.open(corpus, index, progress=False, load_reader=False)
    assert "secret" not in engine.articles
    assert any(p.startswith("skipped secret.txt: a symlink") for p in engine.corpus_problems)
    engine = Engine.open(corpus, index, progress=False, load_reader=False, follow_symlinks=True)
    assert "secret" in engine.articles and engine.corpus_problems == ()


def test_the_signature_follows_a_links_target_and_whether_links_out_are_followed(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("One.", encoding="utf-8")
    first_signature = corpus_signature(corpus)
    x, y = tmp_path / "x.txt", tmp_path / "y.txt"
    x.write_text("Ex.", encoding="utf-8")
    y.write_text("Wy.", encoding="utf-8")
    stat = x.stat()
    os.utime(y, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same size and time: only the target differs
    link = corpus / "link.txt"
    link.symlink_to(x)
    link_stat = link.lstat()
    skipped, followed = corpus_signature(corpus), corpus_signature(corpus, follow_symlinks=True)
    assert len({first_signature, skipped, followed}) == 3

    link.unlink()
    link.symlink_to(y)
    os.utime(link, ns=(link_stat.st_atime_ns, link_stat.st_mtime_ns), follow_symlinks=False)
    assert corpus_signature(corpus, follow_symlinks=True) != followed

    link.unlink()
    assert corpus_signature(corpus, follow_symlinks=True) == corpus_signature(corpus) == first_signature


def test_a_sources_csv_linked_from_outside_is_ignored_and_named(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / ARTICLE, corpus / ARTICLE)
    (tmp_path / "elsewhere.csv").write_text(
        f"file,outlet,date\n{ARTICLE},Leaked,2020-01-01\n", encoding="utf-8"
    )
    (corpus / "sources.csv").symlink_to(tmp_path / "elsewhere.csv")
    load = load_corpus(corpus)
    assert [a.outlet for a in load.articles] == [UNKNOWN_OUTLET]
    assert load.problems == ("sources.csv: a symlink to a file outside the corpus folder, ignored",)
    assert [a.outlet for a in load_corpus(corpus, follow_symlinks=True).articles] == ["Leaked"]


def test_an_archive_named_through_a_link_is_read_as_the_user_chose(tmp_path: Path) -> None:
    (tmp_path / "exports").mkdir()
    real = tmp_path / "exports" / "articles.jsonl"
    real.write_text(json.dumps({"text": "One article.", "outlet": "B"}) + "\n", encoding="utf-8")
    link = tmp_path / "corpus.jsonl"
    link.symlink_to(real)
    assert [a.body for a in load_corpus(link).articles] == ["One article."]
    assert corpus_signature(link) == corpus_signature(link, follow_symlinks=True)


def test_control_characters_are_stripped_from_metadata_and_reported(tmp_path: Path) -> None:
    archive = tmp_path / "a.csv"
    archive.write_bytes(
        b"text,outlet,title,url,id\n"
        b"First body.,B\x00,Ti\x1b[2Jtle,https://example.com/\x07,one\x00\n"
        b"Second body.,B,Plain,https://example.com/,two\n"
    )
    load = load_corpus(archive)
    assert [(a.doc_id, a.outlet, a.title, a.url) for a in load.articles] == [
        ("one", "B", "Ti[2Jtle", "https://example.com/"),
        ("two", "B", "Plain", "https://example.com/"),
    ]
    assert load.problems == (
        "a.csv line 2: control character(s) removed from 'outlet', 'title', 'url', 'id'",
    )

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"text": "Body.", "outlet": "B\u009b", "date": "2020-01-01"}) + "\n")
    load = load_corpus(jsonl)
    assert [a.outlet for a in load.articles] == ["B"]
    assert load.problems == ("a.jsonl line 1: control character(s) removed from 'outlet'",)

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("A body.", encoding="utf-8")
    (corpus / "bin\x1b[2J.txt").write_bytes(b"\x00\x01")
    (corpus / "sources.csv").write_bytes(
        b"file,outlet,date,title,url\na.txt,B\x00,2020-01-01,T\x1bitle,u\x7f\n"
    )
    load = load_corpus(corpus)
    assert [(a.outlet, a.title, a.url) for a in load.articles] == [("B", "Title", "u")]
    assert "sources.csv row 2: control character(s) removed from outlet, title, url" in load.problems
    assert r"skipped bin\x1b[2J.txt: binary file (contains NUL bytes)" in load.problems
    assert not any(CONTROLS.search(p) for p in load.problems)


def test_a_file_whose_name_is_not_utf8_is_skipped_and_named_and_the_rest_load(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A body.", encoding="utf-8")
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt"), "wb") as handle:  # Latin-1, not UTF-8
        handle.write(b"Another body.")
    load = load_corpus(tmp_path)
    assert [a.doc_id for a in load.articles] == ["a"] and load.skipped == 1
    assert load.problems == (r"skipped caf\xe9.txt: its name is not UTF-8 text, so it cannot be an id",)
    assert len(corpus_signature(tmp_path)) == 64  # the signature takes the name as bytes


def test_problems_past_the_first_hundred_are_counted_and_every_skip_still_counts(tmp_path: Path) -> None:
    from qa.corpus.load import MAX_NAMED_PROBLEMS

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("A body.", encoding="utf-8")
    for n in range(150):
        (corpus / f"bin{n:03d}.txt").write_bytes(b"\x00")
    load = load_corpus(corpus)
    assert load.skipped == 150 and load.problem_count == 150
    assert len(load.problems) == MAX_NAMED_PROBLEMS + 1 == 101
    assert load.problems[-1] == "… and 50 more problems"

    archive = tmp_path / "a.jsonl"
    rows = ['{"text": "Good.", "extra": 1}'] + ["not json"] * 300
    archive.write_text("\n".join(rows) + "\n", encoding="utf-8")
    load = load_corpus(archive)
    assert load.skipped == 300 and load.problem_count == 301  # 300 rows, and the unknown field once
    assert load.problems[0].startswith("a.jsonl: unknown field(s) ignored: 'extra'")
    assert load.problems[1] == "a.jsonl line 2: not valid JSON (Expecting value at column 1); row skipped"
    assert load.problems[-1] == "… and 201 more problems"


def test_a_huge_sources_csv_reports_a_bounded_summary_and_keeps_the_manifest_small(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / ARTICLE, corpus / ARTICLE)
    rows = (f"gone{n:06d}.txt,Outlet,2020-01-01,Title {n},https://example.com/{n}\n" for n in range(200_000))
    (corpus / "sources.csv").write_text("file,outlet,date,title,url\n" + "".join(rows), encoding="utf-8")
    index = tmp_path / "index"

    done = _qa("index", "--corpus", corpus, "--index", index)
    asked = _qa("ask", "Who was attacked?", "-c", corpus, "-i", index, "--json")
    assert (done.returncode, asked.returncode) == (3, 0), asked.stderr[-2000:]
    for run in (done, asked):
        lines = run.stderr.split("\n")  # not splitlines: a progress bar redraws itself with \r
        assert len(lines) < 130
        assert "qa: … and 199,900 more problems" in lines
        assert "qa: sources.csv row 101: gone000099.txt is listed but no such file" in lines
        assert "gone000100.txt" not in run.stderr
    assert (index / "manifest.json").stat().st_size < 64 * 1024
    assert "200,000 corpus problem(s) reported above" in done.stdout


def test_a_record_from_before_the_bound_is_read_again_and_rewritten_small(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS / ARTICLE, corpus / ARTICLE)
    rows = "".join(f"gone{n:03d}.txt,Outlet,2020-01-01\n" for n in range(300))
    (corpus / "sources.csv").write_text("file,outlet,date\n" + rows, encoding="utf-8")
    index = tmp_path / "index"
    Engine.open(corpus, index, progress=False, load_reader=False)
    manifest_path = index / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    # As an index built before the bound recorded it: every problem named, and no count.
    old = [f"sources.csv: gone{n:03d}.txt is listed but no such file" for n in range(300)]
    manifest["corpus"]["problems"] = old
    del manifest["corpus"]["problem_count"]
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    told: list[str] = []
    engine = Engine.open(corpus, index, progress=False, load_reader=False, note=told.append)
    assert len(engine.corpus_problems) == 101 and engine.corpus_problems[-1] == "… and 200 more problems"
    assert sum("listed but no such file" in line for line in told) == 100
    record = json.loads(manifest_path.read_text(encoding="utf-8"))["corpus"]
    assert (record["problem_count"], len(record["problems"])) == (300, 101)
