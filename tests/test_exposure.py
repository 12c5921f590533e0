"""Nothing exposed: the running app serves no file but its own assets, and only indexed articles.

Runs against ``python app.py`` started from a folder that holds README.md and
index/ (as a clone does), over plain HTTP, so no client normalises the paths.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import AppServer

from qa.cli import build_parser
from qa.engine import Engine
from qa.errors import InputError

ROUTES = ("gradio_api/file=", "gradio_api/file/", "file=", "static/", "assets/", "gradio_api/proxy=")


def _targets(server: AppServer) -> dict[str, str]:
    """Paths to ask for, each with a line of the file that must not come back."""
    readme, manifest = server.folder / "README.md", server.index / "manifest.json"
    targets = {}
    for path, marker in (
        (readme, "# newsqa"),
        (manifest, "corpus_fingerprint"),
        (Path("/etc/passwd"), "root:"),
    ):
        relative = path.relative_to(server.folder).as_posix() if server.folder in path.parents else None
        forms = [str(path), str(path).replace("/", "%2F"), "..%2F" * 8 + str(path).lstrip("/")]
        forms += ["../" * 8 + str(path).lstrip("/"), "%2e%2e/" * 8 + str(path).lstrip("/")]
        if relative:
            forms += [relative, "./" + relative, relative.replace("/", "%2F"), "file://" + str(path)]
        targets.update(dict.fromkeys(forms, marker))
    return targets


def _get(server: AppServer, path: str) -> tuple[int, str]:
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", "/" + path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")
    finally:
        connection.close()


def test_file_routes_serve_no_project_or_system_file(app_server: AppServer) -> None:
    assert (app_server.index / "manifest.json").is_file() and (app_server.folder / "README.md").is_file()
    served = []
    for route in ROUTES:
        for target, marker in _targets(app_server).items():
            status, body = _get(app_server, route + target)
            if status == 200 and marker in body:
                served.append(f"/{route}{target}")
    assert served == []
    status, body = _get(app_server, "")
    assert status == 200 and "<html" in body.lower(), "the page itself is still served"


@pytest.mark.parametrize(
    "doc_id",
    ["../README", "/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "001_2879f98caf0dd501.txt", "", "index/manifest"],
)
def test_articles_are_looked_up_by_indexed_id_only(engine: Engine, doc_id: str) -> None:
    with pytest.raises(InputError, match="no article with id"):
        engine.article(doc_id)
    assert engine.article("001_2879f98caf0dd501").doc_id == "001_2879f98caf0dd501"


def test_the_api_lists_only_the_ask_endpoint(app_url: str) -> None:
    from gradio_client import Client

    api = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/ask"]
    assert api["unnamed_endpoints"] == {}


def test_the_app_listens_on_loopback_only_unless_told(app_server: AppServer) -> None:
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    port = urlsplit(app_server.url).port
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                listening.add(local.rsplit(":", 1)[0])
    assert listening == {"0100007F"}, listening  # 127.0.0.1, and nothing on any other address
