"""Service-account tokens: JWTs the cluster signs and later recognises.

Pods and agents authenticate as service accounts with bearer tokens, as on a real cluster. A
token is an ES256 JWT signed with the cluster's service-account key (``pki.sa_key``) carrying the
claims kube-apiserver's bound tokens carry: ``iss``, ``sub`` =
``system:serviceaccount:<ns>:<name>``, ``aud``, ``iat``/``nbf``/``exp``, ``jti`` and the
``kubernetes.io`` claim with namespace and service account (name, uid). Verification rejects a
token that is expired, signed by another key, issued by another issuer or for another audience,
or whose ``sub`` disagrees with its ``kubernetes.io`` claim.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kubefence.control.identity import AUTHENTICATED_GROUP, UserInfo

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "SA_PREFIX",
    "InvalidTokenError",
    "ServiceAccountLookup",
    "ServiceAccountTokens",
    "service_account_user",
    "token_request",
]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_AUDIENCE = DEFAULT_ISSUER
SA_PREFIX = "system:serviceaccount:"
_ALGORITHM = "ES256"
_LEEWAY_SECONDS = 5
_CACHE_SIZE = 4096

# (namespace, name, uid) -> does that service account exist (with that uid, when uid != "")?
ServiceAccountLookup = Callable[[str, str, str], bool]


class InvalidTokenError(Exception):
    """A bearer token that looks like ours but must not be accepted (the reason is the message)."""


def service_account_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    """The user a service account's token authenticates as (name and groups as Kubernetes)."""
    return UserInfo(
        f"{SA_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED_GROUP),
        uid,
    )


@dataclass(frozen=True, slots=True)
class ServiceAccountTokens:
    """Issues and verifies service-account JWTs with one key pair.

    ``private_key`` may be None for a verifier only. ``lookup``, when given, is asked whether
    the service account still exists (deleted accounts' tokens stop working, as on a cluster).
    """

    public_key: ec.EllipticCurvePublicKey
    private_key: ec.EllipticCurvePrivateKey | None = None
    issuer: str = DEFAULT_ISSUER
    audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    lookup: ServiceAccountLookup | None = None
    clock: Callable[[], float] = time.time
    # token -> (namespace, name, uid, exp) of tokens already verified (not part of equality)
    _verified: dict[str, tuple[str, str, str, float]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def from_files(
        cls,
        private_key: Path | None,
        public_key: Path,
        *,
        issuer: str = DEFAULT_ISSUER,
        audiences: Sequence[str] = (DEFAULT_AUDIENCE,),
        lookup: ServiceAccountLookup | None = None,
    ) -> ServiceAccountTokens:
        pub = serialization.load_pem_public_key(public_key.read_bytes())
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise ValueError(f"{public_key}: not an EC public key")
        priv = None
        if private_key is not None:
            loaded = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{private_key}: not an EC private key")
            priv = loaded
        return cls(pub, priv, issuer=issuer, audiences=tuple(audiences), lookup=lookup)

    @property
    def key_id(self) -> str:
        """The ``kid`` header: a digest of the public key, so rotated keys are told apart."""
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()[:32]

    def issue(
        self,
        namespace: str,
        service_account: str,
        *,
        expires_in: int = 3600,
        uid: str = "",
        audiences: Sequence[str] = (),
        now: float | None = None,
    ) -> str:
        """A signed token for ``system:serviceaccount:<namespace>:<service_account>``."""
        if self.private_key is None:
            raise ValueError("this ServiceAccountTokens has no private key: it can only verify")
        if expires_in <= 0:
            raise ValueError("expires_in must be positive")
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"{SA_PREFIX}{namespace}:{service_account}",
            "aud": list(audiences or self.audiences),
            "iat": issued,
            "nbf": issued,
            "exp": issued + expires_in,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": service_account, "uid": uid},
            },
        }
        return jwt.encode(
            claims, self.private_key, algorithm=_ALGORITHM, headers={"kid": self.key_id}
        )

    def verify(self, token: str) -> UserInfo:
        """The service account's user for a valid token; raises InvalidTokenError otherwise.

        A token whose signature and claims were verified before is recognised from a small
        cache until it expires (ES256 verification costs about a millisecond); whether its
        service account still exists is asked every time.
        """
        now = self.clock()
        hit = self._verified.get(token)
        if hit is not None and now < hit[3] + _LEEWAY_SECONDS:
            return self._existing(*hit[:3])
        claims = self._decode(token)
        if not now < float(claims["exp"]) + _LEEWAY_SECONDS:  # also by our clock, not only jwt's
            raise InvalidTokenError("service account token has expired")
        namespace, name, uid = self._subject(claims)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (namespace, name, uid, float(claims["exp"]))
        return self._existing(namespace, name, uid)

    def _existing(self, namespace: str, name: str, uid: str) -> UserInfo:
        if self.lookup is not None and not self.lookup(namespace, name, uid):
            raise InvalidTokenError(f"service account {namespace}/{name} does not exist (any more)")
        return service_account_user(namespace, name, uid)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.public_key,
                algorithms=[_ALGORITHM],
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("service account token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidTokenError("service account token has an unexpected audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidTokenError("service account token has an unexpected issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidTokenError("service account token signature is invalid") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"invalid service account token: {exc}") from exc
        return claims

    @staticmethod
    def _subject(claims: dict[str, Any]) -> tuple[str, str, str]:
        sub = claims.get("sub")
        k8s = claims.get("kubernetes.io")
        if not isinstance(sub, str) or not sub.startswith(SA_PREFIX) or not isinstance(k8s, dict):
            raise InvalidTokenError("token is not a service account token")
        namespace, _, name = sub.removeprefix(SA_PREFIX).partition(":")
        sa = k8s.get("serviceaccount")
        if not namespace or not name or ":" in name or not isinstance(sa, dict):
            raise InvalidTokenError(f"malformed service account subject {sub!r}")
        uid = sa.get("uid", "")
        if k8s.get("namespace") != namespace or sa.get("name") != name or not isinstance(uid, str):
            raise InvalidTokenError("token's kubernetes.io claim does not match its subject")
        return namespace, name, uid


MIN_EXPIRATION_SECONDS = 600
DEFAULT_EXPIRATION_SECONDS = 3600


def token_request(
    tokens: ServiceAccountTokens,
    *,
    namespace: str,
    service_account: str,
    uid: str = "",
    body: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """Answer a TokenRequest (``POST .../serviceaccounts/<name>/token``, ``kubectl create
    token``): (the TokenRequest with ``status.token`` and ``status.expirationTimestamp``, []), or
    (None, [(field path, message), ...]) for a 422 as kube-apiserver words it.

    ``spec.expirationSeconds`` defaults to 3600 and must be at least 600; ``spec.audiences``
    defaults to the cluster's audiences. ``spec.boundObjectRef`` is accepted and ignored (this
    cluster does not bind tokens to pods).
    """
    spec_raw = (body or {}).get("spec") or {}
    spec: Mapping[str, Any] = spec_raw if isinstance(spec_raw, Mapping) else {}
    problems: list[tuple[str, str]] = []
    seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION_SECONDS)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        problems.append(("spec.expirationSeconds", "must be an integer"))
    elif seconds < MIN_EXPIRATION_SECONDS:
        problems.append(
            ("spec.expirationSeconds", "may not specify a duration less than 10 minutes")
        )
    elif seconds > 2**32:
        problems.append(
            ("spec.expirationSeconds", "may not specify a duration larger than 2^32 seconds")
        )
    audiences = spec.get("audiences") or list(tokens.audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        problems.append(("spec.audiences", "must be a list of non-empty strings"))
    if problems:
        return None, problems
    issued = time.time() if now is None else now
    assert isinstance(seconds, int)
    token = tokens.issue(
        namespace, service_account, expires_in=seconds, uid=uid, audiences=audiences, now=issued
    )
    expires = dt.datetime.fromtimestamp(int(issued) + seconds, dt.UTC)
    answer: dict[str, Any] = {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": service_account, "namespace": namespace,
                     "creationTimestamp": None},
        "spec": {**spec, "audiences": audiences, "expirationSeconds": seconds},
        "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }  # fmt: skip
    return answer, []
