"""Secure channels and user identities for a source, and the trust store.

The server's certificate is checked against our trust store *before* a
secure channel is opened, so an untrusted server is a clear one-line error
naming the certificate (subject, SHA-1 thumbprint, where to put it), never a
timeout. The rejected certificate is saved next to the trust store
(``<trust_store>/../rejected/<thumbprint>.der``) for a technician to inspect
and, if right, move into the trust store.

A server that rejects *our* certificate closes the channel while opening
it; :func:`explain_connect_error` turns that into the same kind of message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from asyncua import ua
from asyncua.crypto import security_policies, uacrypto
from asyncua.crypto.truststore import TrustStore
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edge.config import SourceConfig
from edge.opcua.uahelp import Client, StatusCodes, status_code

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}
_SECURITY_CODES = (StatusCodes.BadSecurityChecksFailed, StatusCodes.BadCertificateUntrusted,
                   StatusCodes.BadCertificateInvalid, StatusCodes.BadSecurityPolicyRejected,
                   StatusCodes.BadCertificateUriInvalid, StatusCodes.BadCertificateTimeInvalid,
                   StatusCodes.BadIdentityTokenRejected, StatusCodes.BadIdentityTokenInvalid,
                   StatusCodes.BadUserAccessDenied)


class SecurityError(Exception):
    """A certificate or identity problem: retrying will not help until someone acts."""


def thumbprint(cert: x509.Certificate) -> str:
    return hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()


async def _trusted(store_dir: Path, cert: x509.Certificate) -> bool:
    der = cert.public_bytes(Encoding.DER)
    for f in store_dir.iterdir():  # an exact copy of the server's certificate
        if f.is_file():
            try:
                if (await uacrypto.load_certificate(f)).public_bytes(Encoding.DER) == der:
                    return True
            except Exception:
                continue
    try:  # or signed by a CA in the store
        store = TrustStore([store_dir], [])
        await store.load()
        return bool(store.is_trusted(cert))
    except Exception:  # an empty store, unreadable files: not trusted
        return False


async def apply_security(client: Client, src: SourceConfig) -> None:
    """Set up the secure channel and user identity of `client` (before connect)."""
    if src.username is not None and src.password_file is not None:
        client.set_user(src.username)
        client.set_password(src.password_file.read_text().rstrip("\r\n"))
    if src.user_certificate is not None and src.user_private_key is not None:
        await client.load_client_certificate(str(src.user_certificate))
        await client.load_private_key(src.user_private_key)
    if src.security_policy == "None":
        return
    assert src.certificate is not None and src.private_key is not None and src.trust_store is not None
    policy = POLICIES[src.security_policy]
    mode = MODES[src.security_mode]
    cert = await uacrypto.load_certificate(str(src.certificate))
    client.application_uri = _application_uri(cert) or client.application_uri
    endpoints = await client.connect_and_get_server_endpoints()
    try:
        endpoint = Client.find_endpoint(endpoints, mode, policy.URI)
    except ValueError:
        offered = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints})
        raise SecurityError(f"{src.endpoint} offers no {src.security_policy}/{src.security_mode} endpoint "
                            f"(offers: {', '.join(offered)})") from None
    server_cert = uacrypto.x509_from_der(bytes(endpoint.ServerCertificate))  # type: ignore[no-untyped-call]
    if server_cert is None:
        raise SecurityError(f"{src.endpoint} sent no server certificate")
    if not await _trusted(src.trust_store, server_cert):
        tp = thumbprint(server_cert)
        rejected = src.trust_store.parent / "rejected"
        saved = ""
        try:
            rejected.mkdir(exist_ok=True)
            (rejected / f"{tp}.der").write_bytes(server_cert.public_bytes(Encoding.DER))
            saved = f", saved to {rejected / (tp + '.der')}"
        except OSError:
            pass
        raise SecurityError(f"server certificate of {src.endpoint} is not trusted "
                            f"(subject {server_cert.subject.rfc4514_string()}, SHA-1 {tp}{saved}); "
                            f"copy it into {src.trust_store} to trust it")
    await client.set_security(policy, str(src.certificate), str(src.private_key),
                              server_certificate=server_cert.public_bytes(Encoding.DER), mode=mode)


def _application_uri(cert: x509.Certificate) -> str:
    """Servers check that our ApplicationUri matches the URI in our certificate."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else ""


def explain_connect_error(src: SourceConfig, e: BaseException) -> str | None:
    """A clear message for a connect failure caused by security, else None."""
    if isinstance(e, SecurityError):
        return str(e)
    code = getattr(e, "code", None)
    if isinstance(code, int) and code in _SECURITY_CODES:
        name = status_code(code).name
        if code in (StatusCodes.BadIdentityTokenRejected, StatusCodes.BadIdentityTokenInvalid,
                    StatusCodes.BadUserAccessDenied):
            return f"server {src.endpoint} rejected the user identity ({name})"
        return (f"server {src.endpoint} rejected our certificate ({name}); add {src.certificate} "
                "to the server's trusted certificates")
    return None
