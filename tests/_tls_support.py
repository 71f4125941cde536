"""Certificates made at test time (trustme), and gRPC channels that use them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import grpc
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
