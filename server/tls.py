"""TLS and mutual TLS on the gRPC port and the web port, with certificates that SIGHUP replaces
without a restart.

The files that the settings name are read and checked here, with Python's `ssl`, before gRPC
sees them: gRPC itself would only fail the first handshake, with no word about which file is
wrong. The gRPC port's credentials are gRPC's dynamic ones: before each new connection's
handshake, gRPC asks `ServerTls` for a new certificate configuration. The web port's `ssl`
context switches each new connection, as its handshake begins (OpenSSL's server-name callback,
called with or without SNI), to the context of the certificates read last. On both ports,
connections made before a reload keep the certificate they were made with until they close.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from server.config import Settings

_FIRST_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True, slots=True)
class ServerCertificates:
    """What the TLS files held when they were read and checked."""

    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    # Present: mutual TLS, with callers' certificates checked against these roots.
    client_ca: bytes | None
    # These certificates as the web port's `ssl` context (HTTP/1.1 over TLS).
    web_context: ssl.SSLContext = field(repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """The SHA-256 of the server's own certificate, as `openssl x509 -fingerprint -sha256` shows it."""
        match = _FIRST_CERTIFICATE.search(self.certificate_chain.decode("ascii"))
        assert match is not None  # read_certificates found it
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(match.group())).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.private_key, self.certificate_chain)], root_certificates=self.client_ca
        )


def read_certificates(settings: Settings) -> ServerCertificates:
    """Reads and checks the files `settings` names; ValueError names the setting and what is wrong."""
    chain = _read("ATELIER_TLS_CERT_FILE", settings.tls_cert_file)
    key = _read("ATELIER_TLS_KEY_FILE", settings.tls_key_file)
    _check_certificates("ATELIER_TLS_CERT_FILE", settings.tls_cert_file, chain)
    web_context = _web_context(settings)
    client_ca = None
    if settings.tls_client_ca_file:
        client_ca = _read("ATELIER_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file)
        _check_certificates("ATELIER_TLS_CLIENT_CA_FILE", settings.tls_client_ca_file, client_ca)
        web_context.verify_mode = ssl.CERT_REQUIRED
        web_context.load_verify_locations(cadata=client_ca.decode("ascii"))
    return ServerCertificates(
        certificate_chain=chain, private_key=key, client_ca=client_ca, web_context=web_context
    )


class ServerTls:
    """The server's TLS credentials, and the certificates they use now."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.certificates = read_certificates(settings)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        # Whether callers must present a certificate is fixed here, for the server's life: a
        # reload reads the same three files, so it changes the client CA but not the mode.
        self.mutual = self.certificates.client_ca is not None
        self.credentials = grpc.dynamic_ssl_server_credentials(
            self.certificates.configuration(),
            self._next_configuration,
            require_client_authentication=self.mutual,
        )
        # The web port's context, for its life: the first certificates', whose callback hands
        # each handshake the latest ones. (Whether a certificate is asked of callers stays this
        # context's: OpenSSL keeps the first context's verify mode when it switches.)
        self.web_context = self.certificates.web_context
        self.web_context.sni_callback = self._web_handshake

    @property
    def mode(self) -> str:
        return "mutual TLS" if self.mutual else "TLS"

    def reload(self) -> ServerCertificates:
        """Reads the files again; new connections use them. Raises ValueError (and keeps the
        certificates in use) if they are not right. It reads files: call it off the event loop."""
        certificates = read_certificates(self._settings)
        with self._lock:
            self._pending = certificates.configuration()
            self.certificates = certificates
        return certificates

    def _web_handshake(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        with self._lock:
            connection.context = self.certificates.web_context

    def _next_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        # gRPC calls this on one of its own threads before every new connection's handshake.
        # None keeps the configuration it has, so it rebuilds its TLS context only after a reload.
        with self._lock:
            pending, self._pending = self._pending, None
        return pending


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc


def _check_certificates(setting: str, path: str, pem: bytes) -> None:
    problem = ValueError(f"{setting}: {path} holds no PEM certificate")
    try:
        text = pem.decode("ascii")
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=text)
    except (ValueError, ssl.SSLError) as exc:  # ValueError: not ASCII, or empty
        raise problem from exc
    if _FIRST_CERTIFICATE.search(text) is None:  # it held only revocation lists
        raise problem


def _web_context(settings: Settings) -> ssl.SSLContext:
    """The web port's context with the certificate and its key, checking that the key is PEM,
    unencrypted, and the private key of the certificate.

    `ssl` loads a key only from a file, so this reads the two files again, just after
    `read_certificates` did: a rotation writes them before it sends SIGHUP, not during the reload."""

    def no_passphrase() -> str:
        raise _EncryptedKey

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file, password=no_passphrase)
    except _EncryptedKey as exc:
        raise ValueError(
            f"ATELIER_TLS_KEY_FILE: {settings.tls_key_file} is encrypted; gRPC needs the key unencrypted"
        ) from exc
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(
                f"ATELIER_TLS_KEY_FILE: {settings.tls_key_file} is not the private key of the "
                f"certificate in {settings.tls_cert_file}"
            ) from exc
        raise ValueError(f"ATELIER_TLS_KEY_FILE: {settings.tls_key_file} holds no PEM private key") from exc
    except OSError as exc:  # the file went away since it was read
        raise ValueError(f"ATELIER_TLS_KEY_FILE: cannot read {settings.tls_key_file}: {exc}") from exc
    return context


class _EncryptedKey(Exception):
    """Raised instead of answering OpenSSL's passphrase prompt, which would wait on the terminal."""
