"""The namespace-isolation walk-through behind ``kubefence tutorial``.

Why this package exists: people learn NetworkPolicy from one classic walk-through (run nginx in
a namespace, curl it, deny all, allow by label, allow by namespace AND label, default-deny).
kubefence replays it against its reference evaluator (the prediction, explained as ``kubefence
explain`` does) and, as root, against real packets, and shows both. The parts, each its own
module so the story can change without touching the machinery:

- ``_script``: the story as data: steps, the kubectl commands shown, manifests, checks.
- ``_manifests``: which files are in effect after each ``kubectl apply``/``delete``.
- ``_results``: observations, rows, the result, and the ``Observer`` seam.
- ``_runner``: the loop: state, prediction, observation, comparison.
- ``_render``: what the user sees, and the final table.
- ``_netns``: the real-packet observer (the sandbox and curl, both run by
  ``kubefence.dataplane.netns``; this package starts no process).
- ``_cluster``: the sandbox cluster observer: the guide's kubectl commands run literally with
  the real kubectl (``kubefence.kubectl``), predictions from what the API server stores.

It stays inside ``cli`` because its output is CLI text (it renders with
``cli._render_decision``); a layer below ``cli`` could not.
"""

from __future__ import annotations

from kubefence.cli._tutorial._cluster import ClusterObserver
from kubefence.cli._tutorial._manifests import ManifestState
from kubefence.cli._tutorial._netns import (
    NetnsObserver,
    curl_observation,
    enforcement_unavailable,
)
from kubefence.cli._tutorial._render import NOT_ENFORCED, Console, stdout_is_tty
from kubefence.cli._tutorial._results import Observation, Observer, Row, TutorialResult
from kubefence.cli._tutorial._runner import check_step, run_tutorial
from kubefence.cli._tutorial._script import (
    EXAMPLES_RELATIVE,
    STEPS,
    Action,
    Check,
    Step,
    Verb,
    examples_dir,
    kubectl_command,
)

__all__ = [
    "EXAMPLES_RELATIVE",
    "NOT_ENFORCED",
    "STEPS",
    "Action",
    "Check",
    "ClusterObserver",
    "Console",
    "ManifestState",
    "NetnsObserver",
    "Observation",
    "Observer",
    "Row",
    "Step",
    "TutorialResult",
    "Verb",
    "check_step",
    "curl_observation",
    "enforcement_unavailable",
    "examples_dir",
    "kubectl_command",
    "run_tutorial",
    "stdout_is_tty",
]
