"""Authentication: who a request comes from, by client certificate or bearer token.

As kube-apiserver does, several authenticators are tried in order and the first that recognises
the credentials wins: an x509 client certificate signed by the cluster CA (CN = user, each O = a
group), then a bearer token from the static token file (kube-apiserver's ``--token-auth-file``
CSV: ``token,user,uid,"group1,group2"``), then a service-account JWT signed by the cluster's SA
key. Every authenticated user also gets the group ``system:authenticated``. A request without
credentials is ``system:anonymous``; a request whose credentials are present but invalid gets
``None`` (the server answers 401), never anonymous.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubefence.control.identity import ANONYMOUS, AUTHENTICATED_GROUP, UserInfo
from kubefence.control.pki import ClusterPKI, load_certificate
from kubefence.control.tokens import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    InvalidTokenError,
    ServiceAccountLookup,
    ServiceAccountTokens,
)

__all__ = ["Authenticator", "StaticTokens", "load_token_file", "user_from_certificate"]

_CERT_CACHE_SIZE = 256


def _with_authenticated(groups: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*groups, AUTHENTICATED_GROUP)))


def user_from_certificate(cert: x509.Certificate) -> UserInfo | None:
    """The user a client certificate names (CN, O...), or None when it names nobody."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not str(cns[0].value):
        return None
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return UserInfo(str(cns[0].value), _with_authenticated(orgs))


@dataclass(frozen=True, slots=True)
class StaticTokens:
    """Users of a static token file, looked up by a digest of the token."""

    by_digest: Mapping[bytes, UserInfo] = field(default_factory=dict)

    def lookup(self, token: str) -> UserInfo | None:
        # Keyed by digest, so the lookup's timing says nothing about the tokens' text.
        return self.by_digest.get(hashlib.sha256(token.encode()).digest())


def load_token_file(path: Path) -> StaticTokens:
    """Parse a ``--token-auth-file`` CSV: ``token,user,uid[,"group1,group2"]`` per line.

    Blank lines and lines starting with ``#`` are skipped; a line with fewer than three fields,
    an empty token or user, or a repeated token is an error naming the line.
    """
    users: dict[bytes, UserInfo] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{lineno}: need at least token,user,uid")
            token, name, uid = (c.strip() for c in row[:3])
            if not token or not name:
                raise ValueError(f"{path}:{lineno}: empty token or user name")
            groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
            digest = hashlib.sha256(token.encode()).digest()
            if digest in users:
                raise ValueError(f"{path}:{lineno}: duplicate token")
            users[digest] = UserInfo(name, _with_authenticated(groups), uid)
    return StaticTokens(users)


class Authenticator:
    """Turns a request's client certificate and Authorization header into a UserInfo."""

    def __init__(
        self,
        pki: ClusterPKI,
        *,
        token_file: Path | None = None,
        service_account_lookup: ServiceAccountLookup | None = None,
        issuer: str = DEFAULT_ISSUER,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
    ) -> None:
        self._ca = load_certificate(pki.ca_cert)
        self._static = load_token_file(token_file) if token_file is not None else StaticTokens()
        self._tokens = ServiceAccountTokens.from_files(
            pki.sa_key if pki.sa_key.exists() else None,
            pki.sa_public,
            issuer=issuer,
            audiences=audiences,
            lookup=service_account_lookup,
        )
        self._cert_users: dict[bytes, tuple[UserInfo, dt.datetime]] = {}

    @property
    def tokens(self) -> ServiceAccountTokens:
        """The service-account token issuer/verifier (for the TokenRequest subresource)."""
        return self._tokens

    def issue_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expires_in: int = 3600,
        uid: str = "",
        audiences: Sequence[str] = (),
    ) -> str:
        """A signed service-account token this authenticator will accept until it expires."""
        return self._tokens.issue(
            namespace, service_account, expires_in=expires_in, uid=uid, audiences=audiences
        )

    def authenticate(
        self, *, peer_cert_der: bytes | None, authorization: str | None
    ) -> UserInfo | None:
        """The request's user; ANONYMOUS without credentials; None for invalid credentials."""
        if peer_cert_der:
            user = self._certificate_user(peer_cert_der)
            if user is not None:
                return user
            return None
        token = _bearer(authorization)
        if token is None:
            return ANONYMOUS
        if not token:
            return None
        return self.authenticate_token(token)

    def authenticate_token(self, token: str) -> UserInfo | None:
        """The user of a bearer token (static file first, then service-account JWT), or None."""
        user = self._static.lookup(token)
        if user is not None:
            return user
        if token.count(".") != 2:
            return None
        try:
            return self._tokens.verify(token)
        except InvalidTokenError:
            return None

    def token_error(self, token: str) -> str:
        """Why a bearer token is rejected (for logs; never sent to the client)."""
        if self._static.lookup(token) is not None:
            return ""
        try:
            self._tokens.verify(token)
        except InvalidTokenError as exc:
            return str(exc)
        return ""

    def _certificate_user(self, der: bytes) -> UserInfo | None:
        now = dt.datetime.now(dt.UTC)
        cached = self._cert_users.get(der)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return None
        user = self._verified_user(cert, now)
        if user is not None:  # only successes are cached, until the certificate expires
            if len(self._cert_users) >= _CERT_CACHE_SIZE:
                self._cert_users.clear()
            self._cert_users[der] = (user, cert.not_valid_after_utc)
        return user

    def _verified_user(self, cert: x509.Certificate, now: dt.datetime) -> UserInfo | None:
        try:
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            return None
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            return None
        try:
            usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
            return None
        return user_from_certificate(cert)


def _bearer(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` Authorization header; None when there is no bearer token."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return rest.strip()
