"""Certificates and a secured endpoint for the simulator (and the tests).

:func:`make_certificate` writes a self-signed OPC UA application
certificate (DER) and its key (PEM) with ``cryptography``;
:class:`SimSecurity` serves the plant on Basic256Sha256 and
Aes256_Sha256_RsaPss (Sign and SignAndEncrypt), trusts only the client
certificates in its trust directory, and accepts the users it is given.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.cert_gen import dump_private_key_as_pem, generate_private_key, generate_self_signed_app_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.server import Server
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

SECURE_POLICIES = [
    ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign, ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
]


def make_certificate(directory: Path, name: str, uri: str, *, server: bool) -> tuple[Path, Path]:
    """(certificate.der, key.pem) for an application `uri`, valid a year."""
    directory.mkdir(parents=True, exist_ok=True)
    key = generate_private_key()
    host = socket.gethostname()
    cert = generate_self_signed_app_certificate(
        key, name, {},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH])
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


class _Users:
    """Username/password users, plus X.509 users by certificate."""

    def __init__(self, passwords: dict[str, str], cert_users: dict[bytes, str]) -> None:
        self.passwords = passwords
        self.cert_users = cert_users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None:
            return User(role=UserRole.User, name=username) if self.passwords.get(username) == password else None
        if certificate is not None:
            der = certificate if isinstance(certificate, bytes) else certificate.public_bytes(Encoding.DER)
            name = self.cert_users.get(der)
            return User(role=UserRole.User, name=name) if name else None
        return None if self.passwords or self.cert_users else User(role=UserRole.User)


@dataclass
class SimSecurity:
    certificate: Path
    private_key: Path
    trusted_clients: Path  # directory of client certificates the server trusts
    users: dict[str, str] = field(default_factory=dict)  # username -> password; empty: anonymous ok
    user_certificates: dict[str, Path] = field(default_factory=dict)  # user name -> certificate
    policies: list[ua.SecurityPolicyType] = field(default_factory=lambda: list(SECURE_POLICIES))

    def user_manager(self) -> Any:
        certs = {p.read_bytes(): name for name, p in self.user_certificates.items()}
        return _Users(dict(self.users), certs)

    async def apply(self, server: Server) -> None:
        await server.load_certificate(str(self.certificate))
        await server.load_private_key(str(self.private_key))
        server.set_security_policy(self.policies)
        store = TrustStore([self.trusted_clients], [])
        await store.load()
        server.set_certificate_validator(CertificateValidator(
            CertificateValidatorOptions.TRUSTED | CertificateValidatorOptions.TIME_RANGE
            | CertificateValidatorOptions.PEER_CLIENT, store))
