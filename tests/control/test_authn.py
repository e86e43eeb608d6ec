"""Authentication: client certificates, the static token file, service-account JWTs, anonymous."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubefence.control.authn import Authenticator, load_token_file
from kubefence.control.identity import ANONYMOUS, UserInfo
from kubefence.control.pki import ClusterPKI, ensure_pki, issue_client_cert, load_certificate
from kubefence.control.tokens import (
    DEFAULT_AUDIENCE,
    InvalidTokenError,
    ServiceAccountTokens,
    token_request,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPKI:
    return ensure_pki(tmp_path_factory.mktemp("pki"), nodes=("node-a",))


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.csv"
    path.write_text(
        "# static tokens\n"
        's3cret-admin,alice,uid-1,"system:masters,team-a"\n'
        "\n"
        "plain-token,bob,uid-2\n"
    )
    return path


@pytest.fixture(scope="module")
def authn(pki: ClusterPKI, token_file: Path) -> Authenticator:
    return Authenticator(pki, token_file=token_file)


def _der(path: Path) -> bytes:
    return load_certificate(path).public_bytes(serialization.Encoding.DER)


# -- x509 ---------------------------------------------------------------------------------------


def test_admin_certificate(authn: Authenticator, pki: ClusterPKI) -> None:
    user = authn.authenticate(peer_cert_der=_der(pki.admin_cert), authorization=None)
    assert user == UserInfo("kubefence:admin", ("system:masters", "system:authenticated"))


def test_node_certificate(authn: Authenticator, pki: ClusterPKI) -> None:
    user = authn.authenticate(peer_cert_der=_der(pki.node_cert("node-a")), authorization=None)
    assert user is not None
    assert user.name == "system:node:node-a"
    assert user.groups == ("system:nodes", "system:authenticated")


def test_certificate_is_cached_and_still_right(authn: Authenticator, pki: ClusterPKI) -> None:
    der = _der(pki.agent_cert)
    first = authn.authenticate(peer_cert_der=der, authorization=None)
    again = authn.authenticate(peer_cert_der=der, authorization=None)
    assert first == again == UserInfo("kubefence:agent", ("system:authenticated",))


def test_certificate_wins_over_token(authn: Authenticator, pki: ClusterPKI) -> None:
    user = authn.authenticate(
        peer_cert_der=_der(pki.agent_cert), authorization="Bearer plain-token"
    )
    assert user is not None
    assert user.name == "kubefence:agent"


def test_certificate_of_another_ca_is_rejected(authn: Authenticator, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path)
    assert authn.authenticate(peer_cert_der=_der(other.admin_cert), authorization=None) is None


def test_etcd_client_certificate_is_not_an_api_user(authn: Authenticator, pki: ClusterPKI) -> None:
    assert authn.authenticate(peer_cert_der=_der(pki.etcd_client_cert), authorization=None) is None


def test_server_only_certificate_is_not_a_client(authn: Authenticator, pki: ClusterPKI) -> None:
    assert authn.authenticate(peer_cert_der=_der(pki.server_cert), authorization=None) is None


def test_garbage_certificate_is_rejected(authn: Authenticator) -> None:
    assert authn.authenticate(peer_cert_der=b"\x30\x03junk", authorization=None) is None


def _signed_by_ca(pki: ClusterPKI, *, not_before: dt.datetime, not_after: dt.datetime) -> bytes:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "late")]))
        .issuer_name(load_certificate(pki.ca_cert).subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_expired_certificate_is_rejected(authn: Authenticator, pki: ClusterPKI) -> None:
    now = dt.datetime.now(dt.UTC)
    der = _signed_by_ca(
        pki, not_before=now - dt.timedelta(days=10), not_after=now - dt.timedelta(1)
    )
    assert authn.authenticate(peer_cert_der=der, authorization=None) is None


def test_certificate_without_eku_is_accepted(authn: Authenticator, pki: ClusterPKI) -> None:
    now = dt.datetime.now(dt.UTC)
    der = _signed_by_ca(pki, not_before=now - dt.timedelta(1), not_after=now + dt.timedelta(1))
    user = authn.authenticate(peer_cert_der=der, authorization=None)
    assert user == UserInfo("late", ("system:authenticated",))


def test_extra_user_certificate(authn: Authenticator, pki: ClusterPKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "dev.crt", tmp_path / "dev.key"
    issue_client_cert(pki, user="dev", groups=("team-a",), cert_path=cert, key_path=key)
    user = authn.authenticate(peer_cert_der=_der(cert), authorization=None)
    assert user == UserInfo("dev", ("team-a", "system:authenticated"))


# -- anonymous and headers ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwYXNz", "Negotiate abc"])
def test_no_bearer_credentials_is_anonymous(authn: Authenticator, header: str | None) -> None:
    assert authn.authenticate(peer_cert_der=None, authorization=header) is ANONYMOUS


@pytest.mark.parametrize("header", ["Bearer", "Bearer   ", "Bearer nope", "bearer a.b.c"])
def test_bad_bearer_token_is_unauthorized(authn: Authenticator, header: str) -> None:
    assert authn.authenticate(peer_cert_der=None, authorization=header) is None


# -- static token file --------------------------------------------------------------------------


def test_static_token_with_groups(authn: Authenticator) -> None:
    user = authn.authenticate(peer_cert_der=None, authorization="Bearer s3cret-admin")
    assert user == UserInfo("alice", ("system:masters", "team-a", "system:authenticated"), "uid-1")


def test_static_token_scheme_is_case_insensitive(authn: Authenticator) -> None:
    user = authn.authenticate(peer_cert_der=None, authorization="bearer plain-token")
    assert user == UserInfo("bob", ("system:authenticated",), "uid-2")


@pytest.mark.parametrize(
    ("text", "message"),
    [("tok,user\n", "at least"), (",user,uid\n", "empty"), ("a,u,1\na,v,2\n", "duplicate")],
)
def test_bad_token_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_token_file(path)


# -- service-account tokens ---------------------------------------------------------------------


def test_service_account_token_round_trip(authn: Authenticator) -> None:
    token = authn.issue_token("test", "builder", expires_in=600, uid="u-9")
    user = authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}")
    assert user == UserInfo(
        "system:serviceaccount:test:builder",
        ("system:serviceaccounts", "system:serviceaccounts:test", "system:authenticated"),
        "u-9",
    )


def test_service_account_token_claims(authn: Authenticator) -> None:
    token = authn.issue_token("test", "builder", expires_in=600)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "ES256"
    assert header["kid"] == authn.tokens.key_id
    assert claims["sub"] == "system:serviceaccount:test:builder"
    assert claims["aud"] == [DEFAULT_AUDIENCE]
    assert claims["exp"] - claims["iat"] == 600
    assert claims["kubernetes.io"]["namespace"] == "test"
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "builder"


def test_expired_service_account_token(authn: Authenticator) -> None:
    token = authn.tokens.issue("test", "builder", expires_in=60, now=time.time() - 3600)
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}") is None
    assert "expired" in authn.token_error(token)


def test_token_signed_by_another_key(authn: Authenticator, tmp_path: Path) -> None:
    other = ensure_pki(tmp_path)
    forger = ServiceAccountTokens.from_files(other.sa_key, other.sa_public)
    token = forger.issue("test", "builder")
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}") is None
    assert "signature" in authn.token_error(token)


def test_token_for_another_audience(authn: Authenticator) -> None:
    token = authn.issue_token("test", "builder", audiences=("vault",))
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}") is None
    assert "audience" in authn.token_error(token)


def test_token_of_another_issuer(authn: Authenticator, pki: ClusterPKI) -> None:
    foreign = ServiceAccountTokens.from_files(pki.sa_key, pki.sa_public, issuer="https://elsewhere")
    token = foreign.issue("test", "builder")
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}") is None
    assert "issuer" in authn.token_error(token)


def test_token_with_mismatched_claims(authn: Authenticator, pki: ClusterPKI) -> None:
    key = serialization.load_pem_private_key(pki.sa_key.read_bytes(), password=None)
    now = int(time.time())
    claims = {
        "iss": authn.tokens.issuer,
        "sub": "system:serviceaccount:kube-system:admin",
        "aud": [DEFAULT_AUDIENCE],
        "iat": now,
        "exp": now + 60,
        "kubernetes.io": {"namespace": "test", "serviceaccount": {"name": "builder", "uid": ""}},
    }
    token = jwt.encode(claims, key, algorithm="ES256")  # type: ignore[arg-type]
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}") is None


def test_unsigned_token_refused(authn: Authenticator) -> None:
    claims = {"sub": "system:serviceaccount:test:x", "iss": authn.tokens.issuer}
    token = jwt.encode(claims, key="", algorithm="none")
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {token}") is None


def test_deleted_service_account_token_refused(pki: ClusterPKI) -> None:
    existing = {("test", "kept")}
    authn = Authenticator(pki, service_account_lookup=lambda ns, n, _uid: (ns, n) in existing)
    kept = authn.issue_token("test", "kept")
    gone = authn.issue_token("test", "gone")
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {kept}") is not None
    assert authn.authenticate(peer_cert_der=None, authorization=f"Bearer {gone}") is None


def test_cached_token_still_expires(pki: ClusterPKI) -> None:
    now = [time.time()]
    tokens = ServiceAccountTokens.from_files(pki.sa_key, pki.sa_public)
    tokens = dataclasses.replace(tokens, clock=lambda: now[0])
    token = tokens.issue("test", "builder", expires_in=60)
    assert tokens.verify(token).name == "system:serviceaccount:test:builder"
    assert tokens.verify(token).name == "system:serviceaccount:test:builder"  # from the cache
    now[0] += 3600
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.verify(token)
    fresh = dataclasses.replace(tokens)  # an empty cache: the full check says the same
    with pytest.raises(InvalidTokenError, match="expired"):
        fresh.verify(token)


def test_cached_token_of_a_deleted_account_is_refused(pki: ClusterPKI) -> None:
    existing = {("test", "kept")}
    authn = Authenticator(pki, service_account_lookup=lambda ns, n, _uid: (ns, n) in existing)
    header = f"Bearer {authn.issue_token('test', 'kept')}"
    assert authn.authenticate(peer_cert_der=None, authorization=header) is not None
    existing.clear()
    assert authn.authenticate(peer_cert_der=None, authorization=header) is None


# -- TokenRequest (kubectl create token) --------------------------------------------------------


def test_token_request_issues_a_token_the_authenticator_accepts(authn: Authenticator) -> None:
    answer, problems = token_request(
        authn.tokens, namespace="test", service_account="builder", uid="u-1",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 900}}, now=1_800_000_000,
    )  # fmt: skip
    assert problems == []
    assert answer is not None
    assert answer["kind"] == "TokenRequest"
    assert answer["spec"]["expirationSeconds"] == 900
    assert answer["status"]["expirationTimestamp"] == "2027-01-15T08:15:00Z"
    claims = jwt.decode(answer["status"]["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    fresh, _ = token_request(authn.tokens, namespace="test", service_account="builder", body={})
    assert fresh is not None
    assert fresh["spec"]["expirationSeconds"] == 3600
    user = authn.authenticate(
        peer_cert_der=None, authorization=f"Bearer {fresh['status']['token']}"
    )
    assert user is not None
    assert user.name == "system:serviceaccount:test:builder"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"expirationSeconds": 60}, "less than 10 minutes"),
        ({"expirationSeconds": 2**33}, "larger than 2^32"),
        ({"expirationSeconds": "1h"}, "integer"),
        ({"audiences": "api"}, "list"),
    ],
)
def test_token_request_validation(
    authn: Authenticator, spec: dict[str, object], message: str
) -> None:
    answer, problems = token_request(
        authn.tokens, namespace="test", service_account="builder", body={"spec": spec}
    )
    assert answer is None
    assert len(problems) == 1
    assert problems[0][0].startswith("spec.")
    assert message in problems[0][1]
