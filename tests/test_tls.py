"""The server's TLS files are checked before gRPC sees them: each mistake is refused naming the
setting and the file, and the real server stops at start with that one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from server.config import Settings
from server.tls import ServerTls, read_certificates
from tests._support import ROOT
from tests._tls_support import Pki


def _settings(pki: Pki, **files: Path) -> Settings:
    paths = {"cert": pki.server_cert, "key": pki.server_key, "client_ca": pki.ca, **files}
    return Settings(
        tls_cert_file=str(paths["cert"]),
        tls_key_file=str(paths["key"]),
        tls_client_ca_file=str(paths["client_ca"]),
    )


def _file(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


def _encrypted(key: Path) -> bytes:
    private_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def test_good_files_give_the_certificates_and_mutual_tls(pki: Pki) -> None:
    certificates = read_certificates(_settings(pki))
    assert certificates.certificate_chain == pki.server_cert.read_bytes()
    assert certificates.private_key == pki.server_key.read_bytes()
    assert certificates.client_ca == pki.ca.read_bytes()
    assert certificates.fingerprint == pki.server_fingerprint()
    assert "PRIVATE KEY" not in repr(certificates)
    assert ServerTls(_settings(pki)).mode == "mutual TLS"
    tls_only = Settings(tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key))
    assert read_certificates(tls_only).client_ca is None
    assert ServerTls(tls_only).mode == "TLS"


Mistake = Callable[[Pki, Pki, Path], dict[str, Path]]
_MISTAKES: dict[str, tuple[Mistake, str]] = {
    "a missing certificate file": (
        lambda pki, other, tmp: {"cert": tmp / "nope.pem"},
        "ATELIER_TLS_CERT_FILE: cannot read {cert}: No such file or directory",
    ),
    "a directory for the key": (
        lambda pki, other, tmp: {"key": tmp},
        "ATELIER_TLS_KEY_FILE: cannot read {key}: Is a directory",
    ),
    "a certificate file of text": (
        lambda pki, other, tmp: {"cert": _file(tmp, "cert.pem", b"not a certificate\n")},
        "ATELIER_TLS_CERT_FILE: {cert} holds no PEM certificate",
    ),
    "a certificate file of bytes": (
        lambda pki, other, tmp: {"cert": _file(tmp, "cert.der", b"\x30\x82\xff\x00")},
        "ATELIER_TLS_CERT_FILE: {cert} holds no PEM certificate",
    ),
    "the key where the certificate goes": (
        lambda pki, other, tmp: {"cert": pki.server_key},
        "ATELIER_TLS_CERT_FILE: {cert} holds no PEM certificate",
    ),
    "a key file of text": (
        lambda pki, other, tmp: {"key": _file(tmp, "key.pem", b"not a key\n")},
        "ATELIER_TLS_KEY_FILE: {key} holds no PEM private key",
    ),
    "another certificate's key": (
        lambda pki, other, tmp: {"key": other.server_key},
        "ATELIER_TLS_KEY_FILE: {key} is not the private key of the certificate in {cert}",
    ),
    "an encrypted key": (
        lambda pki, other, tmp: {"key": _file(tmp, "encrypted.key", _encrypted(pki.server_key))},
        "ATELIER_TLS_KEY_FILE: {key} is encrypted; gRPC needs the key unencrypted",
    ),
    "a missing client CA file": (
        lambda pki, other, tmp: {"client_ca": tmp / "nope-ca.pem"},
        "ATELIER_TLS_CLIENT_CA_FILE: cannot read {client_ca}: No such file or directory",
    ),
    "an empty client CA file": (
        lambda pki, other, tmp: {"client_ca": _file(tmp, "ca.pem", b"")},
        "ATELIER_TLS_CLIENT_CA_FILE: {client_ca} holds no PEM certificate",
    ),
}


@pytest.mark.parametrize("mistake", list(_MISTAKES))
def test_each_mistake_names_its_setting_and_file(
    mistake: str, pki: Pki, stranger: Pki, tmp_path: Path
) -> None:
    make, message = _MISTAKES[mistake]
    settings = _settings(pki, **make(pki, stranger, tmp_path))
    with pytest.raises(ValueError) as refused:
        read_certificates(settings)
    expected = message.format(
        cert=settings.tls_cert_file, key=settings.tls_key_file, client_ca=settings.tls_client_ca_file
    )
    assert str(refused.value) == expected


def _start_server(env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env={
            "PATH": "",
            "ATELIER_LISTEN": "127.0.0.1:0",
            "ATELIER_WEB_LISTEN": "127.0.0.1:0",
            "ATELIER_DATABASE_URL": f"sqlite:///{tmp / 'atelier.db'}",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("mistake", ["only a certificate", "a missing key file", "another certificate's key"])
def test_the_server_refuses_bad_tls_settings_with_one_line(
    mistake: str, pki: Pki, stranger: Pki, tmp_path: Path
) -> None:
    env = pki.server_env(mutual=True)
    if mistake == "only a certificate":
        del env["ATELIER_TLS_KEY_FILE"]
        message = "ATELIER_TLS_CERT_FILE and ATELIER_TLS_KEY_FILE go together: set both (TLS) or neither"
    elif mistake == "a missing key file":
        env["ATELIER_TLS_KEY_FILE"] = str(tmp_path / "missing.key")
        message = f"ATELIER_TLS_KEY_FILE: cannot read {tmp_path / 'missing.key'}: No such file or directory"
    else:
        env["ATELIER_TLS_KEY_FILE"] = str(stranger.server_key)
        message = (
            f"ATELIER_TLS_KEY_FILE: {stranger.server_key} is not the private key of the certificate "
            f"in {pki.server_cert}"
        )
    result = _start_server(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"atelier-server: configuration error: {message}"]
    assert not (tmp_path / "atelier.db").exists()  # refused before anything was done
