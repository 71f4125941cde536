"""The contract: buf lint, buf breaking, generated code that is never stale, a pinned public API."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import atelier

from tests._support import ROOT

BUF = ROOT / "node_modules" / ".bin" / "buf"


def _buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_buf_lint_is_clean() -> None:
    result = _buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_accepts_the_current_contract_and_catches_a_removed_field(tmp_path: Path) -> None:
    assert _buf("breaking", "--against", str(ROOT)).returncode == 0
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "proto", changed / "proto")
    shutil.copytree(ROOT / "third_party", changed / "third_party")
    shutil.copy(ROOT / "buf.yaml", changed / "buf.yaml")
    proto = changed / "proto" / "atelier" / "v1" / "generation.proto"
    text = proto.read_text()
    assert "  string etag = 13;\n" in text
    proto.write_text(text.replace("  string etag = 13;\n", ""))
    result = _buf("breaking", "--against", str(ROOT), cwd=changed)
    assert result.returncode != 0
    assert "etag" in result.stdout + result.stderr


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    (out / "connect").mkdir(parents=True)
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", "-Iproto", "-Ithird_party/proto",
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            f"--plugin=protoc-gen-connectrpc={Path(sys.executable).parent / 'protoc-gen-connectrpc'}",
            f"--connectrpc_out={out / 'connect'}", *protos,
        ],
        cwd=ROOT,
        check=True,
    )  # fmt: skip
    committed = ROOT / "clients" / "python" / "atelier" / "v1"
    fresh = {p.name: p.read_bytes() for p in (out / "atelier" / "v1").iterdir()}
    current = {
        p.name: p.read_bytes()
        for p in committed.iterdir()
        if p.suffix in (".py", ".pyi") and p.stem != "__init__"
    }
    assert fresh == current, "the generated code is stale: run `make proto`"
    connect = ROOT / "server" / "web" / "_generated"
    fresh = {p.name: p.read_bytes() for p in (out / "connect" / "atelier" / "v1").iterdir()}
    current = {p.name: p.read_bytes() for p in connect.glob("*_connect.py")}
    assert fresh == current, "the generated Connect handlers are stale: run `make proto`"


def _names(requirements: list[str]) -> list[str]:
    return sorted(re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0] for dep in requirements)


def test_the_client_package_needs_only_grpc_and_protobuf() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]
    allowed = ["googleapis-common-protos", "grpcio", "grpcio-status", "protobuf"]
    assert _names(project["dependencies"]) == allowed
    # The command line's libraries only come with the `cli` extra, and only the CLI imports them.
    assert project["optional-dependencies"] == {"cli": project["optional-dependencies"]["cli"]}
    assert _names(project["optional-dependencies"]["cli"]) == ["rich"]
    assert project["scripts"] == {"atelier": "atelier._cli:main"}
    package = Path(atelier.__file__).parent
    sources = "\n".join(p.read_text() for p in package.rglob("*.py"))
    assert "sqlmodel" not in sources and "google.genai" not in sources and "import server" not in sources
    for module in package.rglob("*.py"):
        if not module.is_relative_to(package / "_cli") and module.name != "__main__.py":
            assert not re.search(r"^\s*(from|import) rich", module.read_text(), re.M), module
