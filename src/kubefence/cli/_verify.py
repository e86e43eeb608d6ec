"""How ``sandbox verify`` and ``cluster verify`` print their comparison of real packets with
the engine's prediction (the comparison itself is ``kubefence.verify``).

Why this module exists: both commands probe every declared port between every pair of pods and
must report alike (each mismatch with the prediction's explanation, the totals, the reasons for
pairs that could not be probed, exit 1 on a mismatch), whatever runs the pods.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubefence.verify import Probed

__all__ = ["verify_and_print"]


def verify_and_print(target: Probed, *, what: str, timeout: float, ipv6: bool) -> int:
    """Probe, compare, print; 0 when every probed pair agrees, else 1."""
    from kubefence.cli._progress import Progress
    from kubefence.cli._render_decision import render_text
    from kubefence.verify import verify_sandbox

    pods = len(target.inventory.pods)
    # The probes run as one batch inside the data plane, so this shows that it is working
    # (spinner and elapsed time, on a TTY only), not a share done.
    with Progress("kubefence verify") as progress:
        progress.phase(f"probing {pods * pods} pod pairs on every declared port")
        report = verify_sandbox(target, timeout=timeout, family=6 if ipv6 else 4)
    if not report.specs:
        print("no pod declares a container port: nothing to verify")
        return 0
    for m in report.mismatches:
        print(
            f"MISMATCH {m.protocol.value}/{m.port} {m.src} -> {m.dst}: predicted "
            f"{'allowed' if m.expected else 'denied'}, packets {m.observed.outcome.value} "
            f"({m.observed.detail}); the prediction:"
        )
        print(textwrap.indent(render_text(m.decision), "    "))
    print(
        f"verify {what} (IPv{report.family}): {report.total} pairs on "
        f"{len(report.specs)} port/protocol combinations: {report.passed} agree, "
        f"{len(report.mismatches)} mismatch, {report.unprobed} unprobed "
        "(not counted as passed)"
    )
    if report.unprobed:
        for reason in report.unprobed_reasons:
            print(f"  unprobed: {reason}")
    return 0 if report.ok else 1
