"""Live updates under load: the running app follows ``qa index``, round after round, while 20 clients ask.

1. Copies the bundled corpus and two small articles of its own into a
   temporary folder, indexes it and starts ``app.py --host 127.0.0.1`` over it.
2. ``--clients`` gradio_client clients (20) ask through ``/ask`` all the
   time: the dev questions, and every third question one of two probes.
3. ``--rounds`` rounds (20), each the live-update test of
   tests/test_live_update.py: one article removed (the one the round before
   added), one edited (a ferry renamed), one added (a library robot with a
   new name), then the real ``qa index``. From ``--bound`` seconds after it
   exits until the next round starts, no answer may show a removed article
   or a ferry name edited away, and the probes must find the new robot and
   the new ferry name. No request may fail, in any round.

Records each round's ``qa index`` time, when the last stale answer came back,
the answers checked and the app's resident memory (an old index must be
freed, so it must not grow round after round). Bounded in clients, rounds and
time, it stops the app and exits by itself; writes
``benchmarks/results/live_update.json`` and exits non-zero when a round fails.

Usage: python benchmarks/live_update.py [--clients 20] [--rounds 20] [--bound 20] [--observe 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app_process import dev_questions, start_app, stop_app

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
RESULTS = ROOT / "benchmarks" / "results"
FERRY_Q = "What was the harbour ferry renamed?"
ROBOT_Q = "What is the Kapiti library robot named?"
FIRST_REMOVED = "004_7ea3a471efd226e9"


def _ferry(r: int) -> str:
    return f"Matariki-{r:02d}"


def _robot(r: int) -> str:
    return f"Robo-{r:02d}"


def _ferry_text(r: int) -> str:
    return (
        "Wellington's harbour ferry has a new name. "
        f"The harbour ferry was renamed {_ferry(r)} at a ceremony on the waterfront on Tuesday. "
        "The regional council said the name was chosen by a public vote. Regular sailings resume next week.\n"
    )


def _robot_text(r: int) -> str:
    return (
        "The Kapiti Coast library has a new helper. "
        f"The Kapiti library robot is named {_robot(r)}, after a vote by local schoolchildren. "
        "It guides visitors to the shelves and reads stories aloud. "
        "Staff said it had been popular in its first week.\n"
    )


def _row(name: str, title: str) -> str:
    return f"{name}.txt,Kapiti News,2020-03-12,{title},https://example.org/{name}\n"


class Corpus:
    """The corpus folder and what each round changes in it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.copytree(CORPUS, folder)
        self.round = -1
        self.removed: set[str] = set()
        # Named -99 first, then -00, -01, ... by the rounds.
        self._write("ferry", _ferry_text(99), "Harbour ferry renamed")

    def _write(self, name: str, text: str, title: str) -> None:
        (self.folder / f"{name}.txt").write_text(text, encoding="utf-8")
        rows = (self.folder / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        rows = [r for r in rows if not r.startswith(f"{name}.txt,")] + [_row(name, title)]
        (self.folder / "sources.csv").write_text("".join(rows), encoding="utf-8")

    def _remove(self, name: str) -> None:
        (self.folder / f"{name}.txt").unlink()
        rows = (self.folder / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        (self.folder / "sources.csv").write_text(
            "".join(r for r in rows if not r.startswith(f"{name}.txt,")), encoding="utf-8"
        )
        self.removed.add(name)

    def next_round(self) -> None:
        """Remove the robot of the round before (a bundled article first), rename the ferry, add a robot."""
        self.round += 1
        r = self.round
        self._remove(f"robot-{r - 1:02d}" if r else FIRST_REMOVED)
        self._write("ferry", _ferry_text(r), "Harbour ferry renamed")
        self._write(f"robot-{r:02d}", _robot_text(r), "Library robot named")


@dataclass
class Asked:
    sent: float
    done: float
    question: str
    result: dict[str, Any] | None
    error: str = ""


@dataclass
class Load:
    """Clients asking until stopped; every request kept."""

    url: str
    clients: int
    questions: list[str]
    asked: list[Asked] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, offset: int) -> None:
        from gradio_client import Client

        client = Client(self.url, verbose=False)
        n = offset
        while not self.stop.is_set():
            probe = (FERRY_Q, ROBOT_Q)[(n // 3) % 2]
            question = probe if n % 3 == 0 else self.questions[n % len(self.questions)]
            n += 1
            sent = time.monotonic()
            try:
                asked = Asked(sent, 0.0, question, client.predict(question, api_name="/ask"))
            except Exception as exc:  # every failure is a finding: keep its message
                asked = Asked(sent, 0.0, question, None, f"{type(exc).__name__}: {exc}")
            asked.done = time.monotonic()
            with self.lock:
                self.asked.append(asked)


def _shown(result: dict[str, Any]) -> list[tuple[str, str]]:
    cited = [(c["doc_id"], c["text"]) for a in result["answers"] for c in a["citations"]]
    cited += [(a["citations"][0]["doc_id"], a["text"]) for a in result["answers"] if a["citations"]]
    return cited + [(p["doc_id"], p["text"]) for p in result["passages"]]


def _stale(result: dict[str, Any], r: int, removed: set[str]) -> list[str]:
    """What an answer of round ``r``'s index must not show: a removed article, an old ferry name."""
    found = []
    for doc_id, text in _shown(result):
        if doc_id in removed:
            found.append(f"{doc_id} shown")
        found += [f"{m} shown" for m in re.findall(r"Matariki-\d\d", text) if m != _ferry(r)]
    return found


def _missing(asked: Asked, r: int) -> str:
    """What a probe answered from round ``r``'s index must find: the new robot, the new ferry name."""
    assert asked.result is not None
    if asked.question == ROBOT_Q and not any(d == f"robot-{r:02d}" for d, _ in _shown(asked.result)):
        return f"robot-{r:02d} not found"
    if asked.question == FERRY_Q and not any(_ferry(r) in t for _, t in _shown(asked.result)):
        return f"{_ferry(r)} not found"
    return ""


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _qa_index(corpus: Path, index: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "qa", "index", "--corpus", str(corpus), "--index", str(index)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)


def one_round(corpus: Corpus, index: Path, load: Load, bound: float, observe: float, pid: int) -> dict:
    """Change the corpus, run qa index, and check the answers of the bound onwards."""
    corpus.next_round()
    r, removed = corpus.round, set(corpus.removed)
    started = time.monotonic()
    done = _qa_index(corpus.folder, index)
    indexed = time.monotonic()
    # When the new index was written (its manifest's mtime), on the monotonic clock the answers use.
    written = (index / "manifest.json").stat().st_mtime - time.time() + time.monotonic()
    time.sleep(bound + observe)
    ended = time.monotonic()
    with load.lock:
        asked = [a for a in load.asked if a.sent >= started and a.done < ended]
    answered = [a for a in asked if a.result is not None]
    # Answers that came back after qa index exited and still showed what it removed.
    late = [a for a in answered if a.done >= indexed and _stale(a.result, r, removed)]
    window = [a for a in answered if a.sent >= indexed + bound]
    problems = [s for a in window for s in _stale(a.result, r, removed)]
    problems += [m for a in window if (m := _missing(a, r))]
    probes = [a for a in window if a.question in (FERRY_Q, ROBOT_Q)]
    ok = done.returncode == 0 and "1 added, 1 edited, 1 removed" in done.stderr
    ok = ok and not problems and len(probes) >= 2 and not any(a.error for a in asked)
    return {
        "round": r,
        "passed": ok,
        "qa_index_exit": done.returncode,
        "qa_index_s": round(indexed - started, 1),
        "qa_index_summary": next((ln for ln in done.stderr.splitlines() if "corpus changed" in ln), ""),
        "answers_after_qa_index": sum(a.done >= indexed for a in answered),
        "stale_after_qa_index": len(late),
        "last_stale_answer_after_qa_index_s": round(max((a.done - indexed for a in late), default=0.0), 1),
        "last_stale_answer_after_new_manifest_s": round(
            max((a.done - written for a in answered if _stale(a.result, r, removed)), default=0.0), 1
        ),
        "answers_checked_after_bound": len(window),
        "probes_checked_after_bound": len(probes),
        "problems_after_bound": sorted(set(problems))[:10],
        "failed_requests": sum(bool(a.error) for a in asked),
        "app_rss_mb": round(_rss_mb(pid), 1),
    }



def run(args: argparse.Namespace, tmp: Path) -> dict:
    corpus = Corpus(tmp / "corpus")
    index = tmp / "index"
    built = _qa_index(corpus.folder, index)
    if built.returncode != 0:
        sys.exit(f"live_update.py: qa index failed:\n{built.stderr}")
    proc, url = start_app(
        ["--corpus", str(corpus.folder), "--index", str(index)], tmp / "app.log", "live_update.py", 300
    )
    load = Load(url, args.clients, dev_questions())
    threads = [threading.Thread(target=load.run, args=(i,)) for i in range(args.clients)]
    rounds: list[dict] = []
    try:
        for thread in threads:
            thread.start()
        time.sleep(args.observe)  # the clients are all asking before the first round
        for _ in range(args.rounds):
            rounds.append(one_round(corpus, index, load, args.bound, args.observe, proc.pid))
            print(f"live_update.py: {json.dumps(rounds[-1])}", file=sys.stderr, flush=True)
        with load.lock:
            asked = list(load.asked)
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=180)
        stop_app(proc)
    log = (tmp / "app.log").read_text(errors="replace")
    latencies = [a.done - a.sent for a in asked if a.result is not None]
    in_a_row = next((i for i, r in enumerate(rounds) if not r["passed"]), len(rounds))
    return {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clients": args.clients,
        "bound_s": args.bound,
        "observe_s": args.observe,
        "rounds": len(rounds),
        "rounds_passed": sum(r["passed"] for r in rounds),
        "passed_in_a_row": in_a_row,
        "requests": len(asked),
        "failed_requests": sum(bool(a.error) for a in asked),
        "failures": sorted({a.error for a in asked if a.error})[:10],
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "qa_index_s_median": statistics.median(r["qa_index_s"] for r in rounds) if rounds else None,
        "last_stale_answer_after_qa_index_s_max": max(
            (r["last_stale_answer_after_qa_index_s"] for r in rounds), default=None
        ),
        "last_stale_answer_after_new_manifest_s_max": max(
            (r["last_stale_answer_after_new_manifest_s"] for r in rounds), default=None
        ),
        "app_reloads_logged": log.count("now answering from the new one"),
        "app_log_tracebacks": log.count("Traceback"),
        "app_rss_mb_first_last": [rounds[0]["app_rss_mb"], rounds[-1]["app_rss_mb"]] if rounds else None,
        "per_round": rounds,
    }


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bound", type=float, default=20.0, help="seconds after qa index exits")
    parser.add_argument("--observe", type=float, default=15.0, help="seconds of answers checked per round")
    parser.add_argument("--out", type=Path, default=RESULTS / "live_update.json")
    args = parser.parse_args()
    if not 1 <= args.clients <= 100 or not 1 <= args.rounds <= 50 or not 0 < args.bound + args.observe <= 300:
        parser.error("keep it bounded: 1-100 clients, 1-50 rounds, bound + observe up to 300 s")
    with tempfile.TemporaryDirectory(prefix="newsqa-live-") as tmp:
        report = run(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "per_round"}, indent=2))
    ok = report["passed_in_a_row"] == args.rounds and report["failed_requests"] == 0
    return 0 if ok and report["app_log_tracebacks"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
