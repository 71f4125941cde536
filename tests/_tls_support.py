"""Certificates made at test time (trustme), and gRPC channels that use them."""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass(frozen=True)
class Pki:
    """One CA, with a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    directory: Path

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        client = ca.issue_cert("client.atelier.test")
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        for issued, name in ((server, "server"), (client, "client")):
            (directory / f"{name}.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
            issued.private_key_pem.write_to_path(str(directory / f"{name}.key"))
        return cls(directory)

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    def server_env(self, *, mutual: bool = False) -> dict[str, str]:
        """The server's settings for TLS with these files (and mutual TLS: clients of this CA)."""
        env = {"ATELIER_TLS_CERT_FILE": str(self.server_cert), "ATELIER_TLS_KEY_FILE": str(self.server_key)}
        if mutual:
            env["ATELIER_TLS_CLIENT_CA_FILE"] = str(self.ca)
        return env

    def server_fingerprint(self) -> str:
        """The SHA-256 of the server's certificate, written as `openssl x509 -fingerprint` writes it."""
        certificate = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
        return certificate.fingerprint(hashes.SHA256()).hex(":").upper()

    def copy_server_files(self, *, to: Path) -> None:
        """Puts this PKI's server certificate, key and CA where a server reads them (a rotation)."""
        to.mkdir(parents=True, exist_ok=True)
        for path in (self.server_cert, self.server_key, self.ca):
            shutil.copyfile(path, to / path.name)


def tls_channel(target: str, *, trust: Pki, identity: Pki | None = None) -> grpc.Channel:
    """A channel that trusts `trust`'s CA and, given `identity`, presents its client certificate."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trust.ca.read_bytes(),
        private_key=identity.client_key.read_bytes() if identity else None,
        certificate_chain=identity.client_cert.read_bytes() if identity else None,
    )
    # gRPC shares connections between channels with equal settings: a test of what a new
    # connection gets must not be handed an old one.
    return grpc.secure_channel(target, credentials, options=[("grpc.use_local_subchannel_pool", 1)])


def health_check(channel: grpc.Channel, timeout: float = 10) -> int:
    """The server's overall health status; raises grpc.RpcError when the call fails."""
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
    status: int = response.status
    return status


def refusal(channel: grpc.Channel) -> grpc.StatusCode:
    """How a health check on `channel` fails (it must fail)."""
    try:
        health_check(channel, timeout=5)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    raise AssertionError("the call went through")


def web_context(*, trust: Pki, identity: Pki | None = None) -> ssl.SSLContext:
    """A client's context for the web port: trusts `trust`'s CA, presents `identity`'s certificate."""
    context = ssl.create_default_context(cafile=str(trust.ca))
    if identity is not None:
        context.load_cert_chain(identity.client_cert, identity.client_key)
    return context


def web_client(web_url: str, *, trust: Pki, identity: Pki | None = None) -> httpx.Client:
    return httpx.Client(base_url=web_url, verify=web_context(trust=trust, identity=identity), timeout=10)


def web_fingerprint(web_url: str, *, trust: Pki, identity: Pki | None = None) -> str:
    """The SHA-256 of the certificate the web port presents to a new connection (as
    `openssl x509 -fingerprint` writes it); ssl.SSLError if the handshake fails."""
    address = urllib.parse.urlsplit(web_url)
    assert address.hostname is not None and address.port is not None
    context = web_context(trust=trust, identity=identity)
    with (
        socket.create_connection((address.hostname, address.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=address.hostname) as connection,
    ):
        # TLS 1.3 tells the client of a refused certificate only after the handshake: a request
        # is what meets the refusal.
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: atelier\r\nConnection: close\r\n\r\n")
        if not connection.recv(64).startswith(b"HTTP/1.1 200"):
            raise ssl.SSLError("the web port did not answer")
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest().hex(":").upper()


def web_refused(web_url: str, *, trust: Pki, identity: Pki | None = None) -> bool:
    """Whether the web port refuses a new connection with these certificates at the handshake."""
    try:
        web_fingerprint(web_url, trust=trust, identity=identity)
    except (ssl.SSLError, ConnectionError):
        return True
    return False
