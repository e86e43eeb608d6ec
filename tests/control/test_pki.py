"""The cluster PKI: chains verify, names and SANs are right, keys are private, reruns are no-ops."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubefence.control.pki import (
    ClusterPKI,
    check_certs,
    ensure_pki,
    issue_client_cert,
    load_certificate,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return ensure_pki(
        tmp_path_factory.mktemp("pki"), nodes=("node-a", "node-b"), server_addresses=("198.18.0.9",)
    )


def _subject(path: Path) -> tuple[str, list[str]]:
    name = load_certificate(path).subject
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(cn), [str(o) for o in orgs]


def _leaves(pki: ClusterPKI) -> list[tuple[Path, Path, Path]]:
    """(cert, key, its CA cert) for every leaf."""
    return [
        (pki.server_cert, pki.server_key, pki.ca_cert),
        (pki.admin_cert, pki.admin_key, pki.ca_cert),
        (pki.agent_cert, pki.agent_key, pki.ca_cert),
        (pki.node_cert("node-a"), pki.node_key("node-a"), pki.ca_cert),
        (pki.node_cert("node-b"), pki.node_key("node-b"), pki.ca_cert),
        (pki.etcd_server_cert, pki.etcd_server_key, pki.etcd_ca_cert),
        (pki.etcd_client_cert, pki.etcd_client_key, pki.etcd_ca_cert),
    ]


def test_every_leaf_chains_to_its_ca(pki: ClusterPKI) -> None:
    for cert, _key, ca in _leaves(pki):
        load_certificate(cert).verify_directly_issued_by(load_certificate(ca))


def test_etcd_has_its_own_ca(pki: ClusterPKI) -> None:
    cluster_ca, etcd_ca = load_certificate(pki.ca_cert), load_certificate(pki.etcd_ca_cert)
    assert cluster_ca.subject != etcd_ca.subject
    assert cluster_ca.public_key() != etcd_ca.public_key()
    with pytest.raises(ValueError):
        load_certificate(pki.etcd_client_cert).verify_directly_issued_by(cluster_ca)


def test_ca_lives_ten_years_and_leaves_one(pki: ClusterPKI) -> None:
    ca = load_certificate(pki.ca_cert)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= dt.timedelta(days=3649)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf = load_certificate(pki.admin_cert)
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(days=364) <= life <= dt.timedelta(days=366)
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_server_sans(pki: ClusterPKI) -> None:
    san = load_certificate(pki.server_cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    ips = set(san.value.get_values_for_type(x509.IPAddress))
    dns = set(san.value.get_values_for_type(x509.DNSName))
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "198.18.0.9")} <= ips
    assert {"localhost", "kubernetes.default.svc"} <= dns
    eku = load_certificate(pki.server_cert).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku.value


def test_etcd_server_sans(pki: ClusterPKI) -> None:
    san = load_certificate(pki.etcd_server_cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert ipaddress.ip_address("127.0.0.1") in san.value.get_values_for_type(x509.IPAddress)
    assert "localhost" in san.value.get_values_for_type(x509.DNSName)


def test_client_subjects(pki: ClusterPKI) -> None:
    assert _subject(pki.admin_cert) == ("kubefence:admin", ["system:masters"])
    assert _subject(pki.node_cert("node-a")) == ("system:node:node-a", ["system:nodes"])
    assert _subject(pki.agent_cert) == ("kubefence:agent", [])
    eku = load_certificate(pki.admin_cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku.value


def test_keys_are_0600_and_directory_0700(pki: ClusterPKI) -> None:
    keys = [key for _c, key, _ca in _leaves(pki)] + [pki.ca_key, pki.etcd_ca_key, pki.sa_key]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    assert not list(pki.directory.rglob("*.tmp"))


def test_python_ssl_accepts_the_files(pki: ClusterPKI) -> None:
    """The files load as a TLS server and client would load them (PEM, matching key)."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    client = ssl.create_default_context(cafile=str(pki.ca_cert))
    client.load_cert_chain(pki.admin_cert, pki.admin_key)


def test_second_run_changes_nothing(pki: ClusterPKI) -> None:
    before = {p: p.read_bytes() for p in pki.directory.rglob("*") if p.is_file()}
    again = ensure_pki(pki.directory, nodes=("node-a", "node-b"), server_addresses=("198.18.0.9",))
    after = {p: p.read_bytes() for p in again.directory.rglob("*") if p.is_file()}
    assert before == after


def test_missing_leaf_is_reissued_alone(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    ca_before, server_before = pki.ca_cert.read_bytes(), pki.server_cert.read_bytes()
    pki.admin_cert.unlink()
    ensure_pki(tmp_path)
    assert pki.admin_cert.exists()
    assert pki.ca_cert.read_bytes() == ca_before
    assert pki.server_cert.read_bytes() == server_before


def test_new_server_address_reissues_server_cert(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    before = pki.server_cert.read_bytes()
    ensure_pki(tmp_path, server_addresses=("fd00::5",))
    assert pki.server_cert.read_bytes() != before
    san = load_certificate(pki.server_cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert ipaddress.ip_address("fd00::5") in san.value.get_values_for_type(x509.IPAddress)


def test_new_ca_reissues_every_leaf(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    pki.ca_key.unlink()
    pki.ca_cert.unlink()
    ensure_pki(tmp_path)
    load_certificate(pki.admin_cert).verify_directly_issued_by(load_certificate(pki.ca_cert))
    load_certificate(pki.server_cert).verify_directly_issued_by(load_certificate(pki.ca_cert))


def test_invalid_node_name_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node name"):
        ensure_pki(tmp_path, nodes=("../evil",))


def test_issue_client_cert_for_an_extra_user(pki: ClusterPKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "dev.crt", tmp_path / "dev.key"
    issue_client_cert(pki, user="dev", groups=("team-a",), cert_path=cert, key_path=key)
    assert _subject(cert) == ("dev", ["team-a"])
    load_certificate(cert).verify_directly_issued_by(load_certificate(pki.ca_cert))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_check_certs_reports_every_cert(pki: ClusterPKI) -> None:
    reports = check_certs(pki.directory)
    assert {r.path for r in reports} >= {c for c, _k, _ca in _leaves(pki)}
    assert all(r.chain_ok for r in reports), [r.problem for r in reports if not r.chain_ok]
    admin = next(r for r in reports if r.path == pki.admin_cert)
    assert "CN=kubefence:admin" in admin.subject
    assert "kubefence-ca" in admin.issuer
    assert 360 <= admin.days_left <= 365


def test_check_certs_flags_a_foreign_cert(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "a")
    other = ensure_pki(tmp_path / "b")
    pki.admin_cert.write_bytes(other.admin_cert.read_bytes())
    bad = next(r for r in check_certs(pki.directory) if r.path == pki.admin_cert)
    assert not bad.chain_ok
    assert bad.problem


def test_leaf_expiring_within_30_days_is_reissued(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    key = serialization.load_pem_private_key(pki.admin_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    old = load_certificate(pki.admin_cert)
    now = dt.datetime.now(dt.UTC)
    short = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=340))
        .not_valid_after(now + dt.timedelta(days=10))
        .sign(ca_key, hashes.SHA256())
    )
    pki.admin_cert.write_bytes(short.public_bytes(serialization.Encoding.PEM))
    report = next(r for r in check_certs(tmp_path) if r.path == pki.admin_cert)
    assert report.chain_ok
    assert report.days_left in (9, 10)
    ensure_pki(tmp_path)
    renewed = load_certificate(pki.admin_cert)
    assert renewed.not_valid_after_utc - now > dt.timedelta(days=360)
    assert renewed.subject == old.subject
