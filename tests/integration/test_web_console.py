"""The web console's files at `/` of the web port: what a browser asks, and what else it may ask.
(The console itself is driven in Chromium by tests/clients/test_web_client.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._client_support import TOKEN, client_server
from tests._support import ROOT
from tests._web_support import ok

CONSOLE = ROOT / "clients" / "web" / "console" / "public"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        client_server(tmp_path_factory.mktemp("console")) as server,
        httpx.Client(base_url=server.web_url, timeout=10) as client,
    ):
        yield client


def test_the_page_its_script_and_its_style_are_served_as_they_are_on_disk(web: httpx.Client) -> None:
    page = web.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == (CONSOLE / "index.html").read_bytes()
    assert '<script type="module" src="console.js"></script>' in page.text
    # It loads and calls only its own origin, and is never framed or sniffed.
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert web.get("/index.html").content == page.content
    for name, content_type in (("console.js", "text/javascript"), ("console.css", "text/css")):
        response = web.get(f"/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"] == f"{content_type}; charset=utf-8"
        assert response.content == (CONSOLE / name).read_bytes()


def test_a_browser_revalidates_with_the_etag_and_head_sends_no_body(web: httpx.Client) -> None:
    page = web.get("/console.js")
    assert page.headers["cache-control"] == "no-cache"
    etag = page.headers["etag"]
    again = web.get("/console.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert web.get("/console.js", headers={"if-none-match": '"other"'}).status_code == 200
    head = web.head("/")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len((CONSOLE / "index.html").read_bytes())


@pytest.mark.parametrize(
    "path", ["/nope.js", "/src/main.ts", "/../build.mjs", "/%2e%2e/build.mjs", "/public/index.html"]
)
def test_nothing_but_the_console_files_is_served(web: httpx.Client, path: str) -> None:
    response = web.get(path)
    assert response.status_code == 404
    assert response.text.startswith("nothing is served at")


def test_only_get_and_head_are_answered(web: httpx.Client) -> None:
    response = web.post("/", content=b"x")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_the_console_can_be_turned_off_and_the_api_still_answers(tmp_path: Path) -> None:
    with (
        client_server(tmp_path, ATELIER_WEB_CONSOLE="false") as server,
        httpx.Client(base_url=server.web_url, timeout=10) as client,
    ):
        assert client.get("/").status_code == 404
        assert ok(client, "ListModels", {}, token=TOKEN)["defaultModel"] == "offline"
