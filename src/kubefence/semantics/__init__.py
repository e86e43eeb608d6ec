"""The semantic core: selector matching, the compiled policy algebra, decisions with reasons.

Pure (no I/O). Every other evaluator (engine, data plane) must agree with this one.

``__all__`` is the package's contract: what the layers above (engine, dataplane, audit, cli,
``kubefence.cluster``) and the tests use. ``requirement_holds`` is not re-exported here (only
this package uses it; its home is ``kubefence.api``); ``Interval`` stays, as the type
``block_intervals`` returns.
"""

from __future__ import annotations

from kubefence.semantics._algebra import (
    ANY_INDEX,
    CompiledPolicy,
    CompiledRule,
    Direction,
    PeerKind,
    PeerMatcher,
    PortMatcher,
    compile_policies,
    compile_policy,
    ip_in_block,
    isolating_policies,
    peer_matches_ip,
    peer_matches_pod,
    port_matches,
    resolve_named_port,
    selects_pod,
)
from kubefence.semantics._decide import decide, is_backend, parse_port, parse_protocol
from kubefence.semantics._decision import (
    Admission,
    Decision,
    Endpoint,
    EndpointKind,
    MissReason,
    PeerMiss,
    PolicyMiss,
    PolicyRef,
    PortEntry,
    Reason,
    RuleMiss,
    SideDecision,
    TierRule,
    Unevaluated,
    Unmet,
)
from kubefence.semantics._index import PolicyIndex, index_for
from kubefence.semantics._intervals import (
    Interval,
    block_intervals,
    merge,
    network_interval,
    subtract,
)
from kubefence.semantics._selectors import selector_matches
from kubefence.semantics._settings import DEFAULT_SETTINGS, Settings
from kubefence.semantics._tiers import (
    admin_peer_matches,
    admin_port_matches,
    admin_selects,
    require_no_tiers,
)

__all__ = [
    "ANY_INDEX",
    "DEFAULT_SETTINGS",
    "Admission",
    "CompiledPolicy",
    "CompiledRule",
    "Decision",
    "Direction",
    "Endpoint",
    "EndpointKind",
    "Interval",
    "MissReason",
    "PeerKind",
    "PeerMatcher",
    "PeerMiss",
    "PolicyIndex",
    "PolicyMiss",
    "PolicyRef",
    "PortEntry",
    "PortMatcher",
    "Reason",
    "RuleMiss",
    "Settings",
    "SideDecision",
    "TierRule",
    "Unevaluated",
    "Unmet",
    "admin_peer_matches",
    "admin_port_matches",
    "admin_selects",
    "block_intervals",
    "compile_policies",
    "compile_policy",
    "decide",
    "index_for",
    "ip_in_block",
    "is_backend",
    "isolating_policies",
    "merge",
    "network_interval",
    "parse_port",
    "parse_protocol",
    "peer_matches_ip",
    "peer_matches_pod",
    "port_matches",
    "require_no_tiers",
    "resolve_named_port",
    "selector_matches",
    "selects_pod",
    "subtract",
]
