"""Files by URL: one route serves images, audio and code with their type, an ETag that is their
SHA-256, immutable caching, Range and HEAD; the URLs are signed and expire; images carry their size."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import time
import urllib.parse
import wave
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from atelier import AtelierClient
from atelier.v1 import atelier_service_pb2 as pb
from PIL import Image

from server.api import FileUrls
from server.domain import VersionRef
from tests._support import Api, ServerProcess
from tests._web_support import check_connect_error, ok, stream, unary
from tests.conftest import BACKENDS
from tests.integration.conftest import SERVER_ENV, module_server

KEY = "test-url-signing-key"
FILES_ENV = {**SERVER_ENV, "ATELIER_URL_SIGNING_KEY": KEY, "ATELIER_FILE_URL_SECONDS": "600"}


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _wav(frames: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"".join(struct.pack("<h", (i * 37) % 3000) for i in range(frames)))
    return out.getvalue()


PICTURE = _png(40, 30)
SOUND = _wav(4000)
CODE = b"def main() -> None:\n    print('hi')\n"


@pytest.fixture(scope="module", params=BACKENDS)
def files_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with module_server(request, tmp_path_factory, "files", FILES_ENV) as process:
        yield process


@pytest.fixture(scope="module")
def web(files_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=files_server.web_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def uploaded(web: httpx.Client) -> dict[str, dict[str, Any]]:
    """alice's upload of an image, a sound and a code file: each file's entry of ListFiles, by path."""
    files = {"art/fox.png": PICTURE, "sound/beep.wav": SOUND, "src/main.py": CODE}
    version = ok(
        web,
        "UploadFiles",
        {
            "description": "media",
            "files": [{"path": p, "data": base64.b64encode(d).decode()} for p, d in files.items()],
        },
        "alice-token",
    )
    listed = ok(web, "ListFiles", {"parent": version["name"]}, "alice-token")["files"]
    return {entry["path"]: {**entry, "version": version["name"]} for entry in listed}


def _local(url: str) -> str:
    """The URL's path and query (the test's client has the base)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _file_of(url: str) -> str:
    """What a URL points at, without its expiry and signature: URLs signed a few minutes apart
    (the module's upload, then a later call) may fall in different expiry windows."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _expiry(url: str) -> int:
    return int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["exp"][0])


def test_images_carry_their_size_and_are_served_with_their_type_and_etag(
    web: httpx.Client, files_server: ServerProcess, uploaded: dict[str, dict[str, Any]]
) -> None:
    image = uploaded["art/fox.png"]
    assert (image["width"], image["height"], image["mimeType"]) == (40, 30, "image/png")
    assert "width" not in uploaded["src/main.py"] and "width" not in uploaded["sound/beep.wav"]
    assert image["downloadUrl"].startswith(
        f"{files_server.web_url}/files/{image['version']}/art/fox.png?exp="
    )
    response = web.get(_local(image["downloadUrl"]))
    assert response.status_code == 200 and response.content == PICTURE
    assert response.headers["content-type"] == "image/png"
    assert response.headers["etag"] == f'"{hashlib.sha256(PICTURE).hexdigest()}"' == f'"{image["sha256"]}"'
    cache = response.headers["cache-control"]
    assert "immutable" in cache and 0 < int(cache.split("max-age=")[1].split(",")[0]) <= 900
    assert response.headers["accept-ranges"] == "bytes"
    # HEAD: the same headers, no body; If-None-Match: 304, nothing sent again.
    head = web.head(_local(image["downloadUrl"]))
    assert head.status_code == 200 and head.content == b""
    assert (
        head.headers["content-length"] == str(len(PICTURE))
        and head.headers["etag"] == response.headers["etag"]
    )
    again = web.get(_local(image["downloadUrl"]), headers={"if-none-match": response.headers["etag"]})
    assert (
        again.status_code == 304
        and again.content == b""
        and again.headers["etag"] == response.headers["etag"]
    )
    other = web.get(_local(image["downloadUrl"]), headers={"if-none-match": '"something-else"'})
    assert other.status_code == 200
    # A thumbnail: a PNG 20 pixels wide, its proportions kept.
    thumbnail = web.get(_local(image["downloadUrl"]) + "&width=20")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumbnail.content)).size == (20, 15)
    assert thumbnail.headers["etag"] != response.headers["etag"]
    refused = web.get(_local(uploaded["src/main.py"]["downloadUrl"]) + "&width=20")
    assert refused.status_code == 400 and refused.json()["reason"] == "NOT_AN_IMAGE"


def test_audio_seeks_with_range_requests(web: httpx.Client, uploaded: dict[str, dict[str, Any]]) -> None:
    location = _local(uploaded["sound/beep.wav"]["downloadUrl"])
    size = len(SOUND)
    whole = web.get(location)
    assert whole.headers["content-type"] == "audio/x-wav" and whole.content == SOUND
    middle = web.get(location, headers={"range": "bytes=100-199"})
    assert middle.status_code == 206 and middle.content == SOUND[100:200]
    assert middle.headers["content-range"] == f"bytes 100-199/{size}"
    assert middle.headers["content-length"] == "100"
    tail = web.get(location, headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == SOUND[-10:]
    rest = web.get(location, headers={"range": f"bytes={size - 5}-"})
    assert rest.status_code == 206 and rest.content == SOUND[-5:]
    past = web.get(location, headers={"range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    several = web.get(location, headers={"range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == SOUND  # the whole file answers them all


def test_code_files_and_every_answer_that_lists_files_carry_urls(
    web: httpx.Client, files_server: ServerProcess, uploaded: dict[str, dict[str, Any]]
) -> None:
    code = uploaded["src/main.py"]
    served = web.get(_local(code["downloadUrl"]))
    assert served.content == CODE and served.headers["content-type"] == code["mimeType"] == "text/x-python"
    assert served.headers["content-security-policy"] == "sandbox"
    chunks, _ = stream(web, "ReadFile", {"name": code["version"], "path": "art/fox.png"}, "alice-token")
    assert _file_of(chunks[0]["file"]["downloadUrl"]) == _file_of(uploaded["art/fox.png"]["downloadUrl"])
    assert web.get(_local(chunks[0]["file"]["downloadUrl"])).content == PICTURE
    assert chunks[0]["file"]["width"] == 40
    # Over gRPC the URL's base is the web port's own address, and the same key signs it.
    with grpc.insecure_channel(files_server.target) as channel:
        listed = Api(channel, "alice-token").stub.ListFiles(
            pb.ListFilesRequest(parent=code["version"]), metadata=[("authorization", "Bearer alice-token")]
        )
    by_path = {f.path: f for f in listed.files}
    assert _file_of(by_path["src/main.py"].download_url) == _file_of(code["downloadUrl"])
    assert web.get(_local(by_path["src/main.py"].download_url)).content == CODE
    assert (by_path["art/fox.png"].width, by_path["art/fox.png"].height) == (40, 30)
    # The Python SDK shows them too.
    with AtelierClient(files_server.target, token="alice-token") as client:
        sdk = {f.path: f for f in client.files(code["version"])}
    assert _file_of(sdk["art/fox.png"].download_url) == _file_of(uploaded["art/fox.png"]["downloadUrl"])
    assert (sdk["art/fox.png"].width, sdk["art/fox.png"].height) == (40, 30)


def test_expired_and_forged_urls_are_refused_and_another_owners_files_unreachable(
    web: httpx.Client, files_server: ServerProcess, uploaded: dict[str, dict[str, Any]]
) -> None:
    image = uploaded["art/fox.png"]
    generation, number = image["version"].split("/")[1], int(image["version"].split("/")[3])
    urls = FileUrls(key=KEY.encode(), seconds=600, base=files_server.web_url)
    ref = VersionRef(generation, number)
    # A replica with the same key makes the same URL. (URLs expire on a grid of half their
    # lifetime, 300 s here; signing at the start of the cell the server's URL came from must give it.)
    signed_at = _expiry(image["downloadUrl"]) - 600 - 300
    assert urls.url(ref, "art/fox.png", now=signed_at) == image["downloadUrl"]
    expired = web.get(_local(urls.url(ref, "art/fox.png", now=time.time() - 3600)))
    assert expired.status_code == 403
    assert expired.json()["reason"] == "URL_EXPIRED" and "expired" in expired.json()["message"]
    forged = web.get(_local(image["downloadUrl"]).replace("sig=", "sig=x"))
    assert forged.status_code == 403 and forged.json()["reason"] == "URL_SIGNATURE_INVALID"
    assert "signature is not valid" in forged.json()["message"]
    other_path = web.get(_local(image["downloadUrl"]).replace("art/fox.png", "src/main.py"))
    assert other_path.status_code == 403
    later = web.get(_local(image["downloadUrl"]).replace("exp=", "exp=9"))
    assert later.status_code == 403
    unsigned = web.get(f"/files/{image['version']}/art/fox.png")
    assert unsigned.status_code == 403
    assert web.post(_local(image["downloadUrl"])).status_code == 405
    # bob cannot list alice's files, so gets no URL; his own URL's signature does not open hers.
    check_connect_error(
        unary(web, "ListFiles", {"parent": image["version"]}, "bob-token"),
        404,
        "not_found",
        "VERSION_NOT_FOUND",
    )
    mine = ok(
        web,
        "UploadFiles",
        {
            "description": "bob's",
            "files": [{"path": "art/fox.png", "data": base64.b64encode(_png(2, 2)).decode()}],
        },
        "bob-token",
    )
    bobs = ok(web, "ListFiles", {"parent": mine["name"]}, "bob-token")["files"][0]["downloadUrl"]
    bob_generation = mine["name"].split("/")[1]
    stolen = web.get(_local(bobs).replace(bob_generation, generation))
    assert stolen.status_code == 403
    # A URL for a file that is not there (signed by the server's key) is a clear 404.
    missing = web.get(_local(urls.url(ref, "nothing.txt")))
    assert missing.status_code == 404 and missing.json()["reason"] == "FILE_NOT_FOUND"


def test_a_deleted_generations_urls_answer_not_found_and_work_again_once_undeleted(web: httpx.Client) -> None:
    made = ok(
        web,
        "UploadFiles",
        {"description": "short-lived", "files": [{"path": "a.txt", "data": base64.b64encode(b"a").decode()}]},
        "alice-token",
    )
    url = _local(ok(web, "ListFiles", {"parent": made["name"]}, "alice-token")["files"][0]["downloadUrl"])
    assert web.get(url).content == b"a"
    generation = made["name"].split("/versions/")[0]
    ok(web, "DeleteGeneration", {"name": generation}, "alice-token")
    gone = web.get(url)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    ok(web, "UndeleteGeneration", {"name": generation}, "alice-token")
    assert web.get(url).content == b"a"
