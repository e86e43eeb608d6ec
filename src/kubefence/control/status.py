"""API errors as the Kubernetes `Status` object, the one shape every client understands.

Every failure the server means to report is an `ApiError`; the error middleware turns it (and
anything unexpected, without a traceback) into a JSON `Status` with the right HTTP code, reason
and, for validation, causes that carry kubefence's field paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubefence.errors import FieldError

__all__ = ["ApiError", "Cause", "status_body"]


@dataclass(frozen=True, slots=True)
class Cause:
    """One `details.causes[]` entry: the field path and what is wrong with it."""

    reason: str
    field: str
    message: str


class ApiError(Exception):
    """An HTTP error answered with a Status body. (A plain exception, not a frozen dataclass:
    contextlib and asyncio assign to `__traceback__`, which a frozen instance refuses.)"""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        kind: str = "",
        name: str = "",
        group: str = "",
        causes: Sequence[Cause] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.kind = kind
        self.name = name
        self.group = group
        self.causes = tuple(causes)

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        return status_body(
            self.code,
            self.reason,
            self.message,
            details=self._details(),
        )

    def _details(self) -> dict[str, Any] | None:
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in self.causes
            ]
        return details or None

    # -- the usual ones ---------------------------------------------------------------------

    @classmethod
    def _about(
        cls, code: int, reason: str, resource: str, name: str, group: str, message: str
    ) -> ApiError:
        """An error about one object; ``message`` has ``{what}`` for ``resource.group "name"``."""
        qualified = f"{resource}.{group}" if group else resource
        return cls(
            code,
            reason,
            message.format(what=f'{qualified} "{name}"'),
            kind=resource,
            name=name,
            group=group,
        )

    @classmethod
    def not_found(cls, resource: str, name: str, *, group: str = "") -> ApiError:
        return cls._about(404, "NotFound", resource, name, group, "{what} not found")

    @classmethod
    def already_exists(cls, resource: str, name: str, *, group: str = "") -> ApiError:
        return cls._about(409, "AlreadyExists", resource, name, group, "{what} already exists")

    @classmethod
    def conflict(cls, resource: str, name: str, *, group: str = "") -> ApiError:
        return cls._about(
            409,
            "Conflict",
            resource,
            name,
            group,
            "Operation cannot be fulfilled on {what}: the object has been modified; please "
            "apply your changes to the latest version and try again",
        )

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def invalid(
        cls, kind: str, name: str, problems: Iterable[FieldError], *, group: str = ""
    ) -> ApiError:
        causes = tuple(
            Cause(
                reason=_cause_reason(p.message),
                field=p.path,
                message=f"{p.message}",
            )
            for p in problems
        )
        listed = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
        qualified = f"{kind}.{group}" if group else kind
        return cls(
            422,
            "Invalid",
            f'{qualified} "{name}" is invalid: {listed}',
            kind=kind,
            name=name,
            group=group,
            causes=causes,
        )


def _cause_reason(message: str) -> str:
    """The machine-readable reason of a field problem, as the API server names them."""
    if message.startswith("unknown field"):
        return "FieldValueUnknown"  # (the API server reports strict decoding this way)
    if message.startswith(("is required", "Required")):
        return "FieldValueRequired"
    if "not supported" in message or "must be one of" in message:
        return "FieldValueNotSupported"
    if message.startswith("duplicate"):
        return "FieldValueDuplicate"
    return "FieldValueInvalid"


def status_body(
    code: int, reason: str, message: str, *, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A `Status` object (status Failure unless code < 400)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def store_failure(error: Exception) -> dict[str, Any]:
    """The Status for a request the store failed under (etcd gone, its answer an error).

    503 ServiceUnavailable, as the condition is the backend's and usually passes (etcd restarts);
    the message names the store's problem so `kubectl` shows why, and never carries a traceback.
    """
    return status_body(503, "ServiceUnavailable", f"the storage backend failed: {error}")
