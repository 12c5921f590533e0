"""Shared fixtures: one real index of the bundled corpus and one running app per test session."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
# First start may build the index and always loads the model; allow for a slow machine.
STARTUP_SECONDS = 120


def two_article_corpus(folder: Path) -> Path:
    """Two bundled articles and their sources.csv rows: a small corpus with nothing to report."""
    folder.mkdir(parents=True)
    names = ("001_2879f98caf0dd501.txt", "003_2b5d70423e18adf0.txt")
    for name in names:
        shutil.copy(CORPUS / name, folder / name)
    rows = (CORPUS / "sources.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "sources.csv").write_text(
        "".join(rows[:1] + [r for r in rows[1:] if r.startswith(names)]), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray of 2 CPUs for a module's tests that run jobs, stopped when they are done."""
    ray = pytest.importorskip("ray", reason="the optional extra: pip install 'newsqa[scale]'")
    from qa.embedding.ray_job import connect

    started = connect("local", num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def bundled_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a real index of the bundled corpus, built once."""
    index_dir = tmp_path_factory.mktemp("bundled") / "index"
    Engine.open(CORPUS, index_dir, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def engine(bundled_index: Path) -> Engine:
    """The engine over the bundled corpus (real model, real FAISS and tantivy)."""
    return Engine.open(CORPUS, bundled_index, progress=False)


@pytest.fixture(scope="session")
def sources() -> dict[str, dict[str, str]]:
    """The bundled sources.csv rows keyed by doc_id."""
    with (CORPUS / "sources.csv").open(encoding="utf-8") as handle:
        return {Path(row["file"]).stem: row for row in csv.DictReader(handle)}


@dataclass(frozen=True)
class AppServer:
    """A running ``python app.py``: its URL, working folder, index and log."""

    url: str
    folder: Path
    index: Path
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_app(folder: Path, corpus: Path, *options: str) -> Iterator[AppServer]:
    """Run ``app.py`` from ``folder`` (its working folder) with ``folder/index``, until the block ends.

    The folder holds a copy of README.md and the index, as a clone does, so
    tests can ask the app for files that sit beside it.
    """
    port = free_port()
    log_path = folder / "app.log"
    index = folder / "index"
    shutil.copy(ROOT / "README.md", folder / "README.md")
    command = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--corpus", str(corpus)]
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*command, "--index", str(index), *options],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url + "gradio_api/info", timeout=2):
                    break
            except urllib.error.HTTPError:  # answering, behind a login
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app did not answer within {STARTUP_SECONDS}s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield AppServer(url, folder, index, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory: pytest.TempPathFactory, bundled_index: Path) -> Iterator[AppServer]:
    """The app over the bundled corpus, started once per session from a copy of its index."""
    folder = tmp_path_factory.mktemp("webapp")
    shutil.copytree(bundled_index, folder / "index")
    with serve_app(folder, CORPUS) as server:
        yield server


@pytest.fixture(scope="session")
def app_url(app_server: AppServer) -> str:
    return app_server.url
