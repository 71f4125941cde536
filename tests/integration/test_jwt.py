"""JWT bearer tokens, signed at test time with RSA keys made at test time, checked against a JWKS
that the server reads from a file or from a local HTTP server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from support.databases import fresh_database
from tests._client_support import free_port
from tests._support import Api, ServerProcess, error_details, script
from tests.conftest import check_backend
from tests.integration.conftest import SERVER_ENV

ISSUER = "https://id.example.test/"
AUDIENCE = "atelier-api"


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], *, algorithm: str = "RS256", kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=algorithm, headers={"kid": kid or self.kid})


def claims(sub: str | None = "alice", **changes: Any) -> dict[str, Any]:
    """Valid claims for `sub`, with `changes` (a None value leaves the claim out)."""
    now = int(time.time())
    values = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, **changes}
    return {name: value for name, value in values.items() if value is not None}


class Jwks:
    """The provider's JWKS: a file, and the same document served over HTTP on a free port."""

    def __init__(self, path: Path, keys: list[SigningKey]) -> None:
        self.path = path
        self.publish(keys)

    def publish(self, keys: list[SigningKey]) -> None:
        self.body = json.dumps({"keys": [key.jwk() for key in keys]}).encode()
        self.path.write_bytes(self.body)

    @contextmanager
    def served(self) -> Iterator[str]:
        jwks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(jwks.body)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
        finally:
            server.shutdown()
            thread.join(5)


@dataclass
class JwtServer:
    process: ServerProcess
    key: SigningKey
    jwks: Jwks


@contextmanager
def jwt_server(backend: str, source: str, tmp: Path) -> Iterator[JwtServer]:
    key = SigningKey("key-1")
    jwks = Jwks(tmp / "jwks.json", [key])
    with fresh_database(backend, tmp) as url, jwks.served() as jwks_url:
        env = {name: value for name, value in SERVER_ENV.items() if name != "ATELIER_TOKENS"}
        env.update(
            ATELIER_JWT_JWKS=jwks_url if source == "url" else str(jwks.path),
            ATELIER_JWT_ISSUER=ISSUER,
            ATELIER_JWT_AUDIENCE=AUDIENCE,
        )
        process = ServerProcess(database_url=url, log_path=tmp / "server.log", env=env).start()
        try:
            yield JwtServer(process, key, jwks)
        finally:
            process.kill()


_SETUPS = [
    pytest.param(("sqlite", "file"), id="sqlite-file"),
    pytest.param(("sqlite", "url"), id="sqlite-url"),
    pytest.param(("postgres", "file"), id="postgres-file", marks=pytest.mark.postgres),
    pytest.param(("postgres", "url"), id="postgres-url", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=_SETUPS)
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwtServer]:
    backend, source = request.param
    check_backend(backend)
    with jwt_server(backend, source, tmp_path_factory.mktemp(f"jwt-{backend}-{source}")) as server:
        yield server


@pytest.fixture(scope="module")
def channel(provider: JwtServer) -> Iterator[grpc.Channel]:
    with provider.process.channel() as channel:
        yield channel


def _refused(api: Api) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        api.stub.ListModels(pb.ListModelsRequest(), metadata=api.metadata)
    return caught.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], body: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"


def test_a_valid_token_is_accepted_and_its_subject_is_the_principal(
    provider: JwtServer, channel: grpc.Channel
) -> None:
    alice = Api(channel, provider.key.sign(claims("alice")))
    done = alice.wait(alice.generate(script(stages=1)).name)
    assert done.state == gen.VERSION_STATE_COMPLETED
    generation = done.name.split("/versions/")[0]

    bob = Api(channel, provider.key.sign(claims("bob")))
    with pytest.raises(grpc.RpcError) as caught:
        bob.get(done.name)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    admin = Api(channel, provider.key.sign(claims("ops", scope="openid atelier:admin")))
    found = admin.stub.GetGeneration(pb.GetGenerationRequest(name=generation), metadata=admin.metadata)
    assert found.owner == "alice"
    # An audience list that names this server is accepted too.
    listed = Api(channel, provider.key.sign(claims("alice", aud=["other-api", AUDIENCE])))
    assert listed.get(done.name).name == done.name


def test_scopes_come_from_the_scope_or_scp_claim(provider: JwtServer, channel: grpc.Channel) -> None:
    def api(**scopes: Any) -> Api:
        return Api(channel, provider.key.sign(claims("scoped", **scopes)))

    def generate(caller: Api) -> None:
        caller.stub.Generate(pb.GenerateRequest(prompt=script(stages=0)), metadata=caller.metadata)

    def models(caller: Api) -> None:
        caller.stub.ListModels(pb.ListModelsRequest(), metadata=caller.metadata)

    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"scope": "openid atelier:read"}, {"read"}),
        ({"scope": "read write"}, {"read", "write"}),
        ({"scp": ["atelier:write"]}, {"write"}),
        ({"scp": "atelier:read atelier:write"}, {"read", "write"}),
        ({"scope": "openid profile"}, set()),
        ({}, {"read", "write"}),
    ]
    for scopes, granted in cases:
        caller = api(**scopes)
        for scope, call in (("read", models), ("write", generate)):
            if scope in granted:
                call(caller)
                continue
            with pytest.raises(grpc.RpcError) as caught:
                call(caller)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, (scopes, scope)
            info = error_details(caught.value)[0]
            assert (info.reason, info.metadata["scope"]) == ("SCOPE_REQUIRED", scope)  # type: ignore[attr-defined]


def test_every_bad_token_is_refused_with_its_reason(provider: JwtServer, channel: grpc.Channel) -> None:
    key = provider.key
    impostor = SigningKey(key.kid)  # another key that claims the real key's id
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_input = _unsigned({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims())
    hs_signature = _b64(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    signed = key.sign(claims("alice"))
    head, _, signature = signed.split(".")
    tampered = f"{head}.{_b64(json.dumps(claims('mallory')).encode())}.{signature}"
    now = int(time.time())
    cases: list[tuple[str, str | None, dict[str, str]]] = [
        ("missing", None, {}),
        ("expired", key.sign(claims(exp=now - 3600, iat=now - 7200)), {}),
        ("not yet valid", key.sign(claims(nbf=now + 3600)), {}),
        ("wrong issuer", key.sign(claims(iss="https://evil.example.test/")), {}),
        ("wrong audience", key.sign(claims(aud="another-api")), {}),
        ("bad signature", impostor.sign(claims()), {}),
        ("tampered", tampered, {}),
        ("unknown kid", key.sign(claims(), kid="no-such-key"), {"kid": "no-such-key"}),
        ("alg none", _unsigned({"alg": "none", "typ": "JWT"}, claims()) + ".", {}),
        ("HS256 with the public key", f"{hs_input}.{hs_signature}", {}),
        ("another RSA algorithm", key.sign(claims(), algorithm="RS384"), {}),
        ("no sub", key.sign(claims(sub=None)), {"claim": "sub"}),
        ("no exp", key.sign(claims(exp=None)), {"claim": "exp"}),
        ("sub too long", key.sign(claims("x" * 201)), {}),
        ("malformed", "not.a.jwt", {}),
    ]
    reasons = {
        "missing": "MISSING_CREDENTIALS",
        "expired": "JWT_EXPIRED",
        "not yet valid": "JWT_NOT_YET_VALID",
        "wrong issuer": "JWT_WRONG_ISSUER",
        "wrong audience": "JWT_WRONG_AUDIENCE",
        "bad signature": "JWT_BAD_SIGNATURE",
        "tampered": "JWT_BAD_SIGNATURE",
        "unknown kid": "JWT_UNKNOWN_KEY",
        "alg none": "JWT_ALGORITHM_NOT_ALLOWED",
        "HS256 with the public key": "JWT_ALGORITHM_NOT_ALLOWED",
        "another RSA algorithm": "JWT_ALGORITHM_NOT_ALLOWED",
        "no sub": "JWT_MISSING_CLAIM",
        "no exp": "JWT_MISSING_CLAIM",
        "sub too long": "JWT_INVALID_SUBJECT",
        "malformed": "JWT_MALFORMED",
    }
    assert set(reasons) == {case for case, _, _ in cases}
    for case, token, metadata in cases:
        error = _refused(Api(channel, token))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, case
        info = error_details(error)[0]
        assert info.reason == reasons[case], (case, error.details())  # type: ignore[attr-defined]
        assert dict(info.metadata) == metadata, case  # type: ignore[attr-defined]


@pytest.mark.parametrize("source", ["file", "url"])
def test_a_new_signing_key_is_trusted_without_a_restart(source: str, tmp_path: Path) -> None:
    with jwt_server("sqlite", source, tmp_path) as server, server.process.channel() as channel:
        first = Api(channel, server.key.sign(claims()))
        first.stub.ListModels(pb.ListModelsRequest(), metadata=first.metadata)  # the JWKS is read now
        rotated = SigningKey("key-2")
        server.jwks.publish([server.key, rotated])
        second = Api(channel, rotated.sign(claims()))
        second.stub.ListModels(pb.ListModelsRequest(), metadata=second.metadata)
        # A kid the JWKS does not hold is still refused (the JWKS was read again only just now).
        server.jwks.publish([rotated])
        third = Api(channel, SigningKey("key-3").sign(claims()))
        assert error_details(_refused(third))[0].reason == "JWT_UNKNOWN_KEY"  # type: ignore[attr-defined]


def test_a_jwks_that_cannot_be_read_is_unavailable(tmp_path: Path) -> None:
    env = {name: value for name, value in SERVER_ENV.items() if name != "ATELIER_TOKENS"}
    env.update(
        ATELIER_JWT_JWKS=f"http://127.0.0.1:{free_port()}/jwks.json",
        ATELIER_JWT_ISSUER=ISSUER,
        ATELIER_JWT_AUDIENCE=AUDIENCE,
    )
    with fresh_database("sqlite", tmp_path) as url:
        process = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with process.channel() as channel:
                error = _refused(Api(channel, SigningKey("key-1").sign(claims())))
        finally:
            process.kill()
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(error)[0].reason == "JWKS_UNAVAILABLE"  # type: ignore[attr-defined]
