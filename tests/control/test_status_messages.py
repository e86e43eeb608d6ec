"""The API server's usual errors carry kube-apiserver's exact wording (kubectl prints it as is)."""

from __future__ import annotations

from kubefence.control.status import ApiError


def test_not_found_already_exists_and_conflict_read_as_the_api_server_writes_them() -> None:
    """Code, reason, message and details name the resource (with its group) and the object."""
    gone = ApiError.not_found("pods", "web")
    assert (gone.code, gone.reason, gone.message) == (404, "NotFound", 'pods "web" not found')
    twice = ApiError.already_exists("networkpolicies", "deny", group="networking.k8s.io")
    assert (twice.code, twice.reason) == (409, "AlreadyExists")
    assert twice.message == 'networkpolicies.networking.k8s.io "deny" already exists'
    stale = ApiError.conflict("pods", "web")
    assert (stale.code, stale.reason) == (409, "Conflict")
    assert stale.message == (
        'Operation cannot be fulfilled on pods "web": the object has been modified; please '
        "apply your changes to the latest version and try again"
    )
