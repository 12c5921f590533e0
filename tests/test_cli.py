"""The qa command, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"


def _qa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qa", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_help_and_import_load_neither_torch_nor_the_model() -> None:
    code = (
        "import sys, qa, qa.cli\n"
        "try:\n    qa.cli.main(['ask', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'faiss', 'gradio') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "qa ask --questions" in done.stdout


def test_ask_json_and_readable(bundled_index: Path) -> None:
    done = _qa("ask", "Who is the director of Auckland Pride?", "--index", str(bundled_index), "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"question", "abstained", "answers", "differences", "passages", "latency_ms"}
    citation = out["answers"][0]["citations"][0]
    assert set(citation) == {"doc_id", "outlet", "date", "title", "url", "start", "end", "text"}
    assert (citation["outlet"], citation["date"]) == ("1 NEWS", "2020-03-09")
    span = out["answers"][0]["span"]
    assert span["text"] == "Max Tweedie"
    # Offsets into the article body, inside the cited sentence.
    assert citation["start"] <= span["start"] < span["end"] <= citation["end"]
    offset = span["start"] - citation["start"]
    assert citation["text"][offset : offset + len(span["text"])] == span["text"]

    readable = _qa("ask", "Who is the director of Auckland Pride?", "--index", str(bundled_index))
    assert readable.returncode == 0
    assert "[1] 1 NEWS, 9 March 2020" in readable.stdout
    assert "   answer: Max Tweedie" in readable.stdout


def test_batch_mode_answers_every_line_and_reports_bad_ones(tmp_path: Path, bundled_index: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": "Who is the director of Auckland Pride?", "extra": 1})
        + "\n{not json\n"
        + json.dumps(
            {
                "id": "c",
                "question": "What did he say about police training?",
                "history": ["Who is the director of Auckland Pride?"],
            }
        )
        + "\n",
        encoding="utf-8",
    )
    done = _qa("ask", "--questions", str(questions), "--index", str(bundled_index), "--json")
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "2", "c"]
    assert "error" in lines[1] and "q.jsonl:2" in lines[1]["error"]
    assert lines[2]["answers"][0]["citations"][0]["doc_id"] == "003_2b5d70423e18adf0"
    assert all(line["latency_ms"] > 0 for line in (lines[0], lines[2]))


def test_batch_mode_refuses_bad_filters_once_before_any_line(tmp_path: Path, bundled_index: Path) -> None:
    questions = tmp_path / "q.jsonl"
    line = json.dumps({"id": "a", "question": "Who is the director of Auckland Pride?"})
    questions.write_text(f"{line}\n{line}\n", encoding="utf-8")
    done = _qa(
        "ask", "--questions", str(questions), "--index", str(bundled_index), "--json", "--since", "March"
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("since must be a date YYYY-MM-DD") == 1


def test_empty_question_and_missing_corpus_are_clear_errors(tmp_path: Path, bundled_index: Path) -> None:
    empty = _qa("ask", "  ", "--index", str(bundled_index))
    assert empty.returncode == 1
    assert "qa: error: the question is empty" in empty.stderr
    assert "Traceback" not in empty.stderr
    missing = _qa("ask", "Who?", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "i"))
    assert missing.returncode == 2 and "corpus folder not found" in missing.stderr


def test_index_command_reports_counts(tmp_path: Path) -> None:
    done = _qa("index", "--index", str(tmp_path / "index"))
    assert done.returncode == 0, done.stderr
    assert "5 articles" in done.stdout
    assert "no index" in done.stderr and "Embedding" in done.stderr


def test_verify_hashes_every_file_and_names_the_damaged_one(tmp_path: Path, bundled_index: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(bundled_index, index)
    done = _qa("verify", "--index", str(index))
    assert done.returncode == 0, done.stderr
    assert "every file matches" in done.stdout

    # Same size, other bytes: a load (sizes only) cannot tell; verify can.
    damaged = index / "segments" / "000000" / "passage_vectors.npy"
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (index / "bm25" / "meta.json").unlink()
    done = _qa("verify", "--index", str(index), "--json")
    assert done.returncode == 1
    out = json.loads(done.stdout)
    assert not out["ok"]
    assert {p["file"]: p["problem"] for p in out["problems"]} == {
        "bm25/meta.json": "missing",
        "segments/000000/passage_vectors.npy": "does not match its sha256 in the manifest",
    }
    readable = _qa("verify", "--index", str(index))
    assert readable.returncode == 1
    assert "segments/000000/passage_vectors.npy: does not match its sha256" in readable.stdout
    assert _qa("verify", "--index", str(tmp_path / "none")).returncode == 1
