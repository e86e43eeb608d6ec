"""The cluster's certificates and keys: made once, kept valid, checked on demand.

Kubernetes clients expect TLS everywhere and identify users by client certificates, so a local
cluster needs a real PKI: a cluster CA that signs the API server's serving certificate and the
client certificates of the admin, each node, the policy agent and the controller manager; a
separate etcd CA for mutual
TLS between the API server and etcd; and a key pair that signs service-account tokens.
:func:`ensure_pki` creates what is missing and re-issues a leaf that is missing, expiring within
30 days, not issued by the current CA, or (the server's) lacking a requested address; it never
touches a valid one, so it is cheap to call on every ``cluster up``. Keys are EC P-256 (fast to
make, accepted by Go, OpenSSL and Python clients) and written 0600, atomically.

Layout under the directory: ``ca.crt/key``, ``apiserver.crt/key``, ``admin.crt/key``,
``agent.crt/key``, ``controller-manager.crt/key``, ``apiserver-kubelet-client.crt/key`` (the
API server towards nodes' kubelet endpoints: exec, attach, logs), ``nodes/<name>.crt/key``,
``sa.key/pub``, ``etcd/ca.crt/key``,
``etcd/server.crt/key``, ``etcd/apiserver-client.crt/key``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubefence.control.identity import (
    ADMIN_USER,
    AGENT_USER,
    CONTROLLER_MANAGER_USER,
    MASTERS_GROUP,
    NODES_GROUP,
    node_user,
)

__all__ = [
    "KUBELET_CLIENT_USER",
    "CertReport",
    "ClusterPKI",
    "check_certs",
    "ensure_pki",
    "issue_client_cert",
    "load_certificate",
]

KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"  # as upstream; nodes accept only this CN
CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_BEFORE_DAYS = 30
SERVER_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
SERVER_IPS = ("127.0.0.1", "::1")
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

Key = ec.EllipticCurvePrivateKey


class _File:
    """A path under the PKI directory, read as an attribute (``pki.ca_cert``)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, pki: ClusterPKI, owner: type | None = None) -> Path:
        return pki.directory / self._name


@dataclass(frozen=True, slots=True)
class ClusterPKI:
    """Where each certificate and key of one cluster lives (all under ``directory``)."""

    directory: Path

    ca_cert = _File("ca.crt")
    ca_key = _File("ca.key")
    server_cert = _File("apiserver.crt")
    server_key = _File("apiserver.key")
    admin_cert = _File("admin.crt")
    admin_key = _File("admin.key")
    agent_cert = _File("agent.crt")
    agent_key = _File("agent.key")
    kubelet_client_cert = _File("apiserver-kubelet-client.crt")
    kubelet_client_key = _File("apiserver-kubelet-client.key")
    controller_manager_cert = _File("controller-manager.crt")
    controller_manager_key = _File("controller-manager.key")
    sa_key = _File("sa.key")
    sa_public = _File("sa.pub")
    etcd_ca_cert = _File("etcd/ca.crt")
    etcd_ca_key = _File("etcd/ca.key")
    etcd_server_cert = _File("etcd/server.crt")
    etcd_server_key = _File("etcd/server.key")
    etcd_client_cert = _File("etcd/apiserver-client.crt")
    etcd_client_key = _File("etcd/apiserver-client.key")

    def node_cert(self, name: str) -> Path:
        return self.directory / f"nodes/{_checked_node(name)}.crt"

    def node_key(self, name: str) -> Path:
        return self.directory / f"nodes/{_checked_node(name)}.key"


@dataclass(frozen=True, slots=True)
class CertReport:
    """One certificate as ``cluster certs check`` shows it."""

    path: Path
    subject: str
    issuer: str
    not_after: dt.datetime
    days_left: int
    chain_ok: bool
    problem: str = ""  # why chain_ok is False, or "" when it is True


def _checked_node(name: str) -> str:
    if not _NODE_NAME.fullmatch(name) or len(name) > 253:
        raise ValueError(f"invalid node name {name!r}: must be a DNS subdomain")
    return name


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signing only (EC keys do not encipher); a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(common_name: str, orgs: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically; keys are 0600 from the moment they exist."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600 if private else 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> Key:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def load_certificate(path: Path) -> x509.Certificate:
    """The PEM certificate at ``path``."""
    return x509.load_pem_x509_certificate(path.read_bytes())


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> str:
    """Why ``cert`` is not validly issued by ``ca`` now, or "" when it is."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        return f"not signed by {ca.subject.rfc4514_string()}: {exc or type(exc).__name__}"
    now = _now()
    if cert.not_valid_before_utc > now:
        return "not valid yet"
    if cert.not_valid_after_utc <= now:
        return "expired"
    return ""


def _ca(path_cert: Path, path_key: Path, common_name: str) -> tuple[x509.Certificate, Key]:
    """Load the CA, or make a new one when it is missing, expired or expiring."""
    if path_cert.exists() and path_key.exists():
        cert, key = load_certificate(path_cert), _load_key(path_key)
        if not _needs_renewal(cert) and cert.public_key() == key.public_key():
            return cert, key
    key = _new_key()
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(path_key, _key_pem(key), private=True)
    _write(path_cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return cert, key


def _needs_renewal(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS)


def _sans(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _leaf_ok(
    cert_path: Path,
    key_path: Path,
    ca: x509.Certificate,
    *,
    common_name: str,
    orgs: Sequence[str],
    sans: Sequence[str],
) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert, key = load_certificate(cert_path), _load_key(key_path)
    except ValueError:
        return False
    if _issued_by(cert, ca) or _needs_renewal(cert) or cert.public_key() != key.public_key():
        return False
    if cert.subject != _name(common_name, orgs):
        return False
    if sans:
        try:
            have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            return False
        if not set(_sans(sans)) <= have:
            return False
    return True


def _issue(
    cert_path: Path,
    key_path: Path,
    ca: tuple[x509.Certificate, Key],
    *,
    common_name: str,
    orgs: Sequence[str] = (),
    sans: Sequence[str] = (),
    server: bool = False,
    client: bool = True,
) -> None:
    """Issue a leaf unless a valid one with the same subject (and SANs) is already there."""
    ca_cert, ca_key = ca
    if _leaf_ok(cert_path, key_path, ca_cert, common_name=common_name, orgs=orgs, sans=sans):
        return
    key = _new_key()
    now = _now()
    usages = [u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server),
                              (ExtendedKeyUsageOID.CLIENT_AUTH, client)) if on]  # fmt: skip
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, orgs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(sans)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)


def _ensure_sa_keys(pki: ClusterPKI) -> None:
    if pki.sa_key.exists() and pki.sa_public.exists():
        try:
            if _load_key(pki.sa_key).public_key() == serialization.load_pem_public_key(
                pki.sa_public.read_bytes()
            ):
                return
        except ValueError:
            pass
    key = _new_key()
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write(pki.sa_key, _key_pem(key), private=True)
    _write(pki.sa_public, pub, private=False)


def ensure_pki(
    directory: Path,
    *,
    nodes: Sequence[str] = (),
    server_addresses: Sequence[str] = (),
) -> ClusterPKI:
    """Create or refresh the cluster's PKI under ``directory``; idempotent.

    ``server_addresses`` (IPs or DNS names) are added to the API server certificate's SANs
    beside 127.0.0.1, ::1, localhost and the in-cluster ``kubernetes.default.svc`` names.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    pki = ClusterPKI(directory)
    ca = _ca(pki.ca_cert, pki.ca_key, "kubefence-ca")
    server_sans = (*SERVER_IPS, *SERVER_NAMES, *server_addresses)
    _issue(pki.server_cert, pki.server_key, ca, common_name="kube-apiserver",
           sans=server_sans, server=True, client=False)  # fmt: skip
    _issue(pki.admin_cert, pki.admin_key, ca, common_name=ADMIN_USER, orgs=(MASTERS_GROUP,))
    _issue(pki.agent_cert, pki.agent_key, ca, common_name=AGENT_USER)
    _issue(pki.kubelet_client_cert, pki.kubelet_client_key, ca,
           common_name=KUBELET_CLIENT_USER, orgs=(MASTERS_GROUP,))  # fmt: skip
    _issue(pki.controller_manager_cert, pki.controller_manager_key, ca,
           common_name=CONTROLLER_MANAGER_USER)  # fmt: skip
    for node in nodes:
        _issue(pki.node_cert(node), pki.node_key(node), ca,
               common_name=node_user(node), orgs=(NODES_GROUP,))  # fmt: skip
    _ensure_sa_keys(pki)
    etcd_ca = _ca(pki.etcd_ca_cert, pki.etcd_ca_key, "kubefence-etcd-ca")
    _issue(pki.etcd_server_cert, pki.etcd_server_key, etcd_ca, common_name="kubefence-etcd",
           sans=("127.0.0.1", "::1", "localhost"), server=True, client=True)  # fmt: skip
    _issue(pki.etcd_client_cert, pki.etcd_client_key, etcd_ca,
           common_name="kube-apiserver-etcd-client")  # fmt: skip
    return pki


def issue_client_cert(
    pki: ClusterPKI,
    *,
    user: str,
    groups: Sequence[str] = (),
    cert_path: Path,
    key_path: Path,
) -> None:
    """Issue a client certificate for ``user`` in ``groups``, signed by the cluster CA.

    For extra users (a namespace-scoped developer in a walk-through, a test): CN is the user
    name and each O a group, as the API server's x509 authenticator reads them.
    """
    ca = (load_certificate(pki.ca_cert), _load_key(pki.ca_key))
    _issue(cert_path, key_path, ca, common_name=user, orgs=tuple(groups))


def check_certs(directory: Path) -> list[CertReport]:
    """Every certificate under ``directory``: subject, issuer, expiry, and whether it chains.

    A certificate chains when its issuer is one of the two CAs here (cluster, etcd), that CA's
    signature verifies and both are within their validity periods.
    """
    pki = ClusterPKI(directory)
    cas: list[x509.Certificate] = [
        load_certificate(p) for p in (pki.ca_cert, pki.etcd_ca_cert) if p.exists()
    ]
    reports: list[CertReport] = []
    now = _now()
    for path in sorted(directory.rglob("*.crt")):
        try:
            cert = load_certificate(path)
        except ValueError as exc:
            reports.append(
                CertReport(path, "?", "?", now, 0, chain_ok=False, problem=f"unreadable: {exc}")
            )
            continue
        issuers = [ca for ca in cas if ca.subject == cert.issuer]
        if not issuers:
            problem = f"issuer {cert.issuer.rfc4514_string()} is not a CA of this cluster"
        else:
            problem = _issued_by(cert, issuers[0]) or _issued_by(issuers[0], issuers[0])
        not_after = cert.not_valid_after_utc
        reports.append(
            CertReport(
                path=path,
                subject=cert.subject.rfc4514_string(),
                issuer=cert.issuer.rfc4514_string(),
                not_after=not_after,
                days_left=(not_after - now).days,
                chain_ok=not problem,
                problem=problem,
            )
        )
    return reports
