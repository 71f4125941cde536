"""The layer rule, read from the code's own imports: data flows proto -> api -> domain -> storage/providers.

Each rule below is one sentence of docs/ARCHITECTURE.md. A test that reads every `import`
(including the ones inside functions) is the only way such a rule stays true.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._support import ROOT

_SQL = ("sqlalchemy", "sqlmodel", "alembic", "psycopg")
_GRPC = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "google.protobuf", "google.rpc", "atelier")

# Per package (the longest matching prefix wins): the modules it must never import.
_FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Storage knows SQL and nothing of the server or of gRPC.
    "storage": ("server", "bench", "support", "tests", *_GRPC),
    # The leaves every layer shares depend on nothing of Atelier.
    "server.files": ("server", "storage", *_SQL, *_GRPC),
    "server.config": ("server", "storage", *_SQL, *_GRPC),
    "server.metrics": ("server", "storage", *_SQL, *_GRPC),
    "server.cpu": ("server", "storage", *_SQL, *_GRPC),
    # TLS is the transport's business: settings and gRPC's credentials, nothing of the service.
    "server.tls": ("storage", "server.domain", "server.api", "server.providers", "server.app", *_SQL),
    # Providers know neither SQL nor gRPC, nor who calls them.
    "server.providers": ("storage", "server.domain", "server.api", "server.app", *_SQL, *_GRPC),
    # The domain is plain Python: storage's verbs, the providers' interface, no SQL, no gRPC.
    "server.domain": ("server.api", "server.app", *_SQL, *_GRPC),
    # The API translates gRPC to domain calls: it never reaches past the domain.
    "server.api": ("storage", "server.providers", "server.app", *_SQL),
    # The web door translates HTTP (Connect, file URLs) to the API's shared methods and the domain.
    "server.web": ("storage", "server.providers", "server.app", *_SQL),
    # The composition root wires storage, providers, domain and API together: it may import them all.
    "server": _SQL,
    # The SDK is installed alone: it knows nothing of the server.
    "atelier": ("server", "storage", "bench", "support", "tests", *_SQL),
    "bench": ("tests",),
    "support": ("tests", "bench", "server", "storage"),
}
_SOURCES = {
    "server": ROOT / "server",
    "storage": ROOT / "storage",
    "atelier": ROOT / "clients" / "python" / "atelier",
    "bench": ROOT / "bench",
    "support": ROOT / "support",
}


def _modules() -> Iterator[tuple[str, Path]]:
    for package, folder in _SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).with_suffix("")
            if package == "atelier" and relative.parts[0] == "v1":
                continue  # generated
            if package == "storage" and relative.parts[0] == "migrations":
                parts: tuple[str, ...] = (package, *relative.parts)
            else:
                parts = (package, *relative.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _imports(module: str, path: Path) -> Iterator[tuple[int, str]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            yield node.lineno, name
            # `from package import _module` names a module too.
            for alias in node.names:
                yield node.lineno, f"{name}.{alias.name}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rule_for(module: str) -> tuple[str, tuple[str, ...]]:
    owner = max((p for p in _FORBIDDEN if _within(module, p)), key=len)
    return owner, _FORBIDDEN[owner]


def _private_module(name: str) -> tuple[str, str] | None:
    """The `_private` module of Atelier that `name` reaches into, and the package it belongs to."""
    parts = name.split(".")
    if parts[0] not in _SOURCES:
        return None  # another project's layout is its own business
    for index, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[: index + 1]), ".".join(parts[:index])
    return None


_ALL = list(_modules())


def test_every_package_is_read() -> None:
    assert {module.split(".")[0] for module, _ in _ALL} == set(_SOURCES)
    assert len(_ALL) > 60


@pytest.mark.parametrize(("module", "path"), _ALL, ids=[module for module, _ in _ALL])
def test_imports_follow_the_layers(module: str, path: Path) -> None:
    owner, forbidden = _rule_for(module)
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {name} ({owner} must not import {prefix})"
        for line, name in _imports(module, path)
        for prefix in forbidden
        if _within(name, prefix) and not _within(name, owner) and not _within(module, prefix + "._")
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(("module", "path"), _ALL, ids=[module for module, _ in _ALL])
def test_private_modules_stay_inside_their_package(module: str, path: Path) -> None:
    """A `_private` module is imported only from inside its own package; others use its `__init__`."""
    broken = set()
    for line, name in _imports(module, path):
        private = _private_module(name)
        if private is not None and not _within(module, private[1]):
            broken.add(f"{path.relative_to(ROOT)}:{line} imports {private[0]}, private to {private[1]}")
    assert not broken, "\n".join(sorted(broken))


def test_a_broken_rule_is_caught(tmp_path: Path) -> None:
    """The checks above can fail: a domain module that imports SQLAlchemy, or the API's storage."""
    domain = tmp_path / "bad.py"
    domain.write_text(
        "import sqlalchemy.exc\nfrom storage import Version\nfrom server.api._convert import x\n"
    )
    found = list(_imports("server.domain.bad", domain))
    owner, forbidden = _rule_for("server.domain.bad")
    assert owner == "server.domain"
    assert any(_within(name, "sqlalchemy") for _, name in found)
    assert any(_within(name, prefix) for _, name in found for prefix in forbidden)
    assert _rule_for("server.api._methods")[1].count("storage") == 1
    assert _private_module("server.api._convert.x") == ("server.api._convert", "server.api")
    assert _private_module("server.domain.generations") is None
