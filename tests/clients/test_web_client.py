"""The TypeScript client (clients/web) and the web console: their own test suites, run against the
real server by vitest (the client's) and by Playwright in Debian's headless Chromium (the console's),
and the check that their committed generated code and built console are current."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._client_support import npm_installed, tree_of
from tests._support import ROOT

WEB_CLIENT = ROOT / "clients" / "web"
CHROMIUM = Path(os.environ.get("ATELIER_CHROMIUM", "/usr/bin/chromium"))

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js (`node`) is not on PATH")


@pytest.fixture(scope="module")
def npm() -> str:
    return npm_installed(WEB_CLIENT, "@connectrpc/connect-web")


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    # The server the suites start runs on this interpreter (the venv's, with the server installed).
    env.update(ATELIER_PYTHON=sys.executable, CI="1", NO_COLOR="1")
    if "ATELIER_CHROMIUM" in os.environ:
        env["ATELIER_CHROMIUM"] = os.environ["ATELIER_CHROMIUM"]
    return subprocess.run(command, cwd=WEB_CLIENT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_typescript_client_typechecks_and_passes_its_tests_against_the_real_server(npm: str) -> None:
    result = _run([npm, "test"], timeout=300)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    # vitest's summary: every test passed, none skipped.
    assert re.search(r"^\s*Tests\s+(\d+) passed \(\1\)$", result.stdout, re.M), result.stdout[-4000:]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no {CHROMIUM}: `make chromium` installs Debian's")
def test_the_console_does_the_whole_flow_in_headless_chromium(npm: str) -> None:
    result = _run([npm, "run", "test:console"], timeout=300)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert re.search(r"^\s*Tests\s+1 passed \(1\)$", result.stdout, re.M), result.stdout[-4000:]


def test_the_generated_typescript_and_the_built_console_are_current(npm: str, tmp_path: Path) -> None:
    """What `make proto` and `make console` would write is what is committed."""
    buf = WEB_CLIENT / "node_modules" / ".bin" / "buf"
    generated = subprocess.run(
        [str(buf), "generate", "../..", "--template", "buf.gen.yaml", "-o", str(tmp_path / "gen")],
        cwd=WEB_CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    assert tree_of(tmp_path / "gen" / "src" / "gen") == tree_of(WEB_CLIENT / "src" / "gen"), (
        "clients/web/src/gen is stale: run `make proto`"
    )
    bundle = tmp_path / "console.js"
    built = subprocess.run(
        ["node", "console/build.mjs", str(bundle)],
        cwd=WEB_CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    committed = WEB_CLIENT / "console" / "public" / "console.js"
    assert bundle.read_bytes() == committed.read_bytes(), "the console's bundle is stale: run `make console`"
