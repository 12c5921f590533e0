"""Load test: many concurrent API clients against the web app, on loopback only.

1. Starts ``app.py --host 127.0.0.1`` on a free port over the bundled corpus
   (the index is built in a temporary folder unless ``--index`` is given).
2. Steady load: ``--clients`` gradio_client clients (20), each asking the dev
   questions in turn through ``/ask`` for ``--seconds`` (60); every request
   is timed and every failure kept with its message.
3. Overload: ``--burst`` requests (200) submitted at once, far more than the
   queue holds; each must come back, answered or refused as busy, within
   ``--burst-timeout`` seconds: none may hang.

Bounded in clients, requests and time, it stops the app and exits by itself.
Writes ``benchmarks/results/load.json`` and prints the figures.

Usage: python benchmarks/load.py [--clients 20] [--seconds 60] [--burst 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from app_process import dev_questions, start_app, stop_app

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"



def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def steady(url: str, clients: int, seconds: float, questions: list[str]) -> dict:
    """``clients`` threads, each with its own client, asking in turn until time is up."""
    from gradio_client import Client

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def run(offset: int) -> None:
        client = Client(url, verbose=False)
        n = offset
        while time.monotonic() < stop_at:
            question = questions[n % len(questions)]
            n += clients
            started = time.perf_counter()
            try:
                result = client.predict(question, api_name="/ask")
                ok = isinstance(result, dict) and "answers" in result
                error = "" if ok else f"malformed result: {str(result)[:100]}"
            except Exception as exc:  # every failure is a finding: keep its message
                error = f"{type(exc).__name__}: {exc}"
            with lock:
                if error:
                    failures.append(error)
                else:
                    latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies) + len(failures),
        "answered": len(latencies),
        "failed": len(failures),
        "failures": sorted(set(failures))[:10],
        "throughput_per_s": round(len(latencies) / elapsed, 2),
        "latency_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "latency_p95_ms": round(1000 * _percentile(latencies, 0.95), 1) if latencies else None,
        "latency_max_ms": round(1000 * max(latencies), 1) if latencies else None,
    }


def burst(url: str, requests: int, timeout: float, questions: list[str]) -> dict:
    """``requests`` jobs submitted at once; each must end, answered or refused, within ``timeout``."""
    from gradio_client import Client

    # One worker a job, so all of them reach the server at once (the default is 40).
    client = Client(url, verbose=False, max_workers=requests)
    started = time.monotonic()
    jobs = [client.submit(questions[i % len(questions)], api_name="/ask") for i in range(requests)]
    answered, refused, hung = 0, [], 0
    for job in jobs:
        left = max(0.1, timeout - (time.monotonic() - started))
        try:
            job.result(timeout=left)
            answered += 1
        except FutureTimeout:
            hung += 1
        except Exception as exc:  # the refusal a client sees when the queue is full
            refused.append(f"{type(exc).__name__}: {exc}")
    return {
        "requests": requests,
        "answered": answered,
        "refused": len(refused),
        "refusal_messages": sorted(set(refused))[:5],
        "hung": hung,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--burst", type=int, default=200, help="requests submitted at once (0: skip)")
    parser.add_argument("--burst-timeout", type=float, default=120.0)
    parser.add_argument("--index", type=Path, help="index folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()
    if not 1 <= args.clients <= 100 or not 0 < args.seconds <= 600 or not 0 <= args.burst <= 500:
        parser.error("keep it bounded: 1-100 clients, up to 600 s, a burst of up to 500")

    questions = dev_questions()
    with tempfile.TemporaryDirectory(prefix="newsqa-load-") as tmp:
        index = args.index or Path(tmp) / "index"
        proc, url = start_app(["--index", str(index)], Path(tmp) / "app.log", "load.py")
        try:
            print(f"load.py: app at {url}; {args.clients} clients for {args.seconds:.0f} s", file=sys.stderr)
            report = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "steady": steady(url, args.clients, args.seconds, questions),
            }
            if args.burst:
                print(f"load.py: a burst of {args.burst} requests at once", file=sys.stderr)
                report["burst"] = burst(url, args.burst, args.burst_timeout, questions)
            log = (Path(tmp) / "app.log").read_text(errors="replace")
            report["app_log_tracebacks"] = log.count("Traceback")
        finally:
            stop_app(proc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    steady_ok = report["steady"]["failed"] == 0
    burst_ok = "burst" not in report or report["burst"]["hung"] == 0
    return 0 if steady_ok and burst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
