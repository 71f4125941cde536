"""The README's grpcurl examples, run as written against the real server, plus grpcurl's view of errors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests._support import ROOT, ServerProcess, tool_env

README_ADDRESS = "127.0.0.1:50051"


def _readme_grpcurl_script() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it with grpcurl", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert blocks, "the README lost its grpcurl examples"
    return "\n".join(blocks)


def test_the_readme_grpcurl_examples_work(plain_server: ServerProcess, tmp_path: Path) -> None:
    script = _readme_grpcurl_script().replace(README_ADDRESS, plain_server.target)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # list and describe, through reflection
    assert "atelier.v1.AtelierService" in out and "grpc.health.v1.Health" in out
    assert "rpc Generate ( .atelier.v1.GenerateRequest ) returns ( .atelier.v1.Version );" in out
    # ListModels, Generate, Progress to the end, then the finished version and its files
    assert '"default_model": "offline"' in out
    assert '"state": "VERSION_STATE_QUEUED"' in out
    assert '"type": "PROGRESS_EVENT_TYPE_STAGE_DONE"' in out
    assert out.count('"state": "VERSION_STATE_COMPLETED"') >= 2  # the last event, and GetVersion
    assert '"path": "README.md"' in out and '"mime_type": "text/markdown"' in out
    assert '"data": "' in out
    # Tweak: the next version, turn 2, with the new file beside the old ones, and four turns.
    assert '"kind": "VERSION_KIND_TWEAK"' in out and '"turn": "2"' in out
    assert '"path": "docs/usage.md"' in out
    assert out.count('"role": "TURN_ROLE_USER"') == 2 and out.count('"role": "TURN_ROLE_MODEL"') == 2
    # Iterate, then Diff against v1: the two added files.
    assert '"kind": "VERSION_KIND_ITERATE"' in out
    assert out.count('"change": "FILE_CHANGE_ADDED"') == 2 and '"path": "app/schemas/project.py"' in out


def test_grpcurl_sees_health_and_clear_errors(plain_server: ServerProcess) -> None:
    health = subprocess.run(
        ["grpcurl", "-plaintext", plain_server.target, "grpc.health.v1.Health/Check"],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(health.stdout) == {"status": "SERVING"}

    bad = subprocess.run(
        [
            "grpcurl", "-plaintext", "-format-error", "-d", '{"prompt": ""}',
            plain_server.target, "atelier.v1.AtelierService/Generate",
        ],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0
    error = json.loads(bad.stdout or bad.stderr)
    assert error["code"] == 3 and "prompt is empty" in error["message"]
    kinds = {detail["@type"]: detail for detail in error["details"]}
    assert kinds["type.googleapis.com/google.rpc.ErrorInfo"]["reason"] == "EMPTY_PROMPT"
    violations = kinds["type.googleapis.com/google.rpc.BadRequest"]["field_violations"]
    assert violations[0]["field"] == "prompt"
