"""The README's "From a browser" examples, run as written (curl) against the real server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from PIL import Image

from tests._support import ROOT, ServerProcess, tool_env

README_WEB = "http://127.0.0.1:8080"


def _readme_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From a browser", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert blocks, "the README lost its curl examples"
    return "\n".join(blocks)


def test_the_readme_curl_examples_work(plain_server: ServerProcess, tmp_path: Path) -> None:
    script = _readme_script().replace(README_WEB, plain_server.web_url)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout.replace(": ", ":")
    assert result.stdout.startswith("SERVING\n")
    assert '"defaultModel":"offline"' in out
    assert '"state":"VERSION_STATE_QUEUED"' in out and '"state":"VERSION_STATE_COMPLETED"' in out
    assert '"path":"image.png"' in out and '"width":' in out and '"downloadUrl":"http://127.0.0.1:' in out
    assert "content-type:image/png" in out and 'etag:"' in out and "immutable" in out
    assert "HTTP/1.1 206 Partial Content" in out and "content-range:bytes 0-99/" in out
    assert Image.open(tmp_path / "fox.png").format == "PNG"
    assert Image.open(tmp_path / "thumbnail.png").width == 32
    assert '"kind":"VERSION_KIND_UPLOAD"' in out
    assert '"code":"invalid_argument"' in out and '"reason":"INVALID_NAME"' in out
