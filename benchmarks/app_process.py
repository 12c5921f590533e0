"""The web app as its own process, for the benchmarks that flood it (load.py, live_update.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # never another interface: these scripts flood what they start
STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_app(
    app_args: list[str], log: Path, name: str, startup_seconds: float = STARTUP_SECONDS
) -> tuple[subprocess.Popen[bytes], str]:
    """``python app.py`` on a free loopback port with ``app_args``, once it answers; (process, url).

    ``name`` (the calling script) prefixes the message when the app exits or does not start.
    """
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", HOST, "--port", str(port), *app_args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    url = f"http://{HOST}:{port}/"
    deadline = time.monotonic() + startup_seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name}: the app exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"{name}: the app did not start within {startup_seconds}s; see {log}")


def stop_app(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the app has not gone within 15 s."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    proc.kill()  # nothing happens once it has exited
    proc.wait()


def dev_questions() -> list[str]:
    """The dev set's questions, which the load scripts ask round and round."""
    with (ROOT / "data" / "eval" / "questions.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line)["question"] for line in lines if line.strip()]
