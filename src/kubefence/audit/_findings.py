"""Lint findings as data: the catalog of rules (stable ids) and the ``Finding`` record.

Why this module exists: ids, names, severities and help texts are a contract with CI systems
(SARIF rule metadata, ``--fail-on``, suppressions keyed by id), so they are defined once here and
never reused for a different meaning. Renderers (table, JSON, SARIF) live in ``cli``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RULES", "RULES_BY_ID", "Finding", "LintRule", "Severity"]


class Severity(StrEnum):
    """How bad a finding is; ``--fail-on`` compares with ``rank``."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


@dataclass(frozen=True, slots=True)
class LintRule:
    """One kind of finding: a stable id (``KF001``), a slug name and the texts tools show."""

    id: str
    name: str
    severity: Severity  # the default; a finding may carry a different one (documented per rule)
    title: str
    description: str
    fix: str


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in the manifests, located at a file and line when they are known."""

    rule: str
    severity: Severity
    message: str
    fix: str
    namespace: str | None = None
    object: str | None = None  # "NetworkPolicy tenant-a/allow-web", "Namespace tenant-a"
    path: str = ""  # API field path inside the object, e.g. "spec.ingress[0].from[1]"
    file: str | None = None
    line: int | None = None

    def sort_key(self) -> tuple[str, int, str, str, str, str]:
        return (
            self.file or "~",
            self.line or 0,
            self.object or "",
            self.path,
            self.rule,
            self.message,
        )

    @property
    def location(self) -> str:
        if self.file is None:
            return "-"
        return self.file if self.line is None else f"{self.file}:{self.line}"


RULES: tuple[LintRule, ...] = (
    LintRule(
        "KF001",
        "and-or-near-miss",
        Severity.WARNING,
        "namespaceSelector-only and podSelector-only items in one peer list",
        "Two list items are ORed (S13): one admits every pod of the matching namespaces, the "
        "other the matching pods of the policy's own namespace. Written as one item they would "
        "be ANDed: matching pods inside matching namespaces. The two forms differ by one '-'.",
        "if you meant 'these pods in those namespaces', put podSelector and namespaceSelector "
        "in the same list item (drop the '-' before podSelector)",
    ),
    LintRule(
        "KF002",
        "policy-selects-no-pod",
        Severity.WARNING,
        "policy podSelector selects no pod",
        "The policy's spec.podSelector matches no pod of its namespace in the input, so the "
        "policy has no effect (checked only when the input contains pods).",
        "fix the labels in spec.podSelector or in the workloads' pod templates",
    ),
    LintRule(
        "KF003",
        "peer-matches-nothing",
        Severity.WARNING,
        "peer matches no pod or namespace",
        "A from/to item whose namespaceSelector matches no namespace, or whose selectors match "
        "no pod, allows nothing (checked only when the input contains pods).",
        "fix the selector labels, or remove the peer",
    ),
    LintRule(
        "KF004",
        "named-port-undeclared",
        Severity.ERROR,
        "named port that no candidate destination declares",
        "Named ports resolve against the destination pod's container ports by name and "
        "protocol (S21): the selected pods for ingress, the peer pods for egress. A name no "
        "candidate declares matches nothing; towards ipBlock destinations it never matches.",
        "use the containerPort name (and protocol) the destination declares, or a number",
    ),
    LintRule(
        "KF005",
        "egress-without-dns",
        Severity.ERROR,
        "egress isolation without a DNS allowance",
        "Pods isolated for egress can resolve names only when some rule allows 53/UDP to "
        "kube-dns (k8s-app=kube-dns in kube-system) or to NodeLocal DNS (169.254.20.10).",
        "add an egress rule to namespaceSelector kubernetes.io/metadata.name=kube-system + "
        "podSelector k8s-app=kube-dns on 53/UDP and 53/TCP (and ipBlock 169.254.20.10/32 with "
        "NodeLocal DNS), or run `kubefence isolate --allow-dns --egress`",
    ),
    LintRule(
        "KF006",
        "ipblock-targets-service",
        Severity.ERROR,
        "ipBlock covers Service ClusterIPs or the Service range",
        "Policies apply after Service address translation (S22): they see backend pod IPs, "
        "never ClusterIPs, so the part of an ipBlock inside the Service range never matches. "
        "Error when the block lies inside the Service range or is exactly a ClusterIP, warning "
        "when it merely overlaps it.",
        "select the Service's backend pods with podSelector/namespaceSelector instead",
    ),
    LintRule(
        "KF007",
        "ipblock-covers-pods",
        Severity.WARNING,
        "ipBlock covers pod addresses",
        "ipBlocks also match pod IPs (S15). Pod IPs are reassigned on every restart, so an "
        "ipBlock that covers them admits whatever pod gets the address next, bypassing the "
        "label-based intent of the other rules. Checked against the pods' addresses in the "
        "input, or the pod range given with --pod-cidr.",
        "select pods with podSelector/namespaceSelector, and add the pod CIDR to 'except'",
    ),
    LintRule(
        "KF008",
        "spoofable-namespace-selector",
        Severity.WARNING,
        "namespaceSelector {} with a podSelector any tenant can satisfy",
        "'namespaceSelector: {}' admits matching pods from every namespace: any tenant who can "
        "create pods can label one to match and get through.",
        "restrict namespaceSelector, e.g. matchLabels kubernetes.io/metadata.name=<namespace> "
        "(set by the API server, S16, and not forgeable)",
    ),
    LintRule(
        "KF009",
        "no-default-deny-ingress",
        Severity.WARNING,
        "namespace without a default-deny ingress policy",
        "No policy with 'podSelector: {}' isolates the namespace's pods for ingress, so every "
        "pod not selected by some policy accepts connections from anywhere.",
        "add a policy with podSelector {} and policyTypes [Ingress] (`kubefence isolate`)",
    ),
    LintRule(
        "KF010",
        "no-default-deny-egress",
        Severity.INFO,
        "namespace without a default-deny egress policy",
        "No policy with 'podSelector: {}' isolates the namespace's pods for egress, so pods may "
        "connect anywhere, including to other tenants.",
        "add a policy with podSelector {} and policyTypes [Egress] plus a DNS allowance "
        "(`kubefence isolate --egress --allow-dns`)",
    ),
    LintRule(
        "KF011",
        "allow-all-rule",
        Severity.WARNING,
        "rule allows all traffic",
        "A rule with no from/to and no ports (e.g. 'ingress: [{}]') matches every peer on "
        "every port (S09): the policy isolates nothing in that direction for its pods.",
        "list the peers and ports that need access, or delete the rule if that is the intent",
    ),
    LintRule(
        "KF012",
        "redundant-rule",
        Severity.INFO,
        "rule made redundant by another rule",
        "Every peer and every port of this rule is covered by another rule that applies to "
        "at least the same pods (same policy, or a policy with the same or an empty "
        "podSelector in the namespace), so removing it changes nothing.",
        "delete the redundant rule, or narrow the broader one if it is too broad",
    ),
    LintRule(
        "KF013",
        "duplicate-policy-name",
        Severity.ERROR,
        "duplicate NetworkPolicy name",
        "Two manifests define the same namespace/name: applied one after the other, the second "
        "silently replaces the first.",
        "rename one of the policies or merge them",
    ),
    LintRule(
        "KF014",
        "tier-priority-tie",
        Severity.WARNING,
        "two tiered policies with the same priority",
        "Two ClusterNetworkPolicies of one tier have the same spec.priority. Upstream leaves "
        "their order to the implementation, so clusters may disagree; kubefence evaluates them "
        "by name (then kind), which may not be what the author meant.",
        "give each policy of a tier its own priority",
    ),
    LintRule(
        "KF015",
        "tier-rule-shadowed",
        Severity.WARNING,
        "tiered rule that can never decide",
        "An earlier rule of the same tier and direction (an earlier rule of the policy, or a "
        "rule of a policy evaluated before it) has the same or a broader subject, peers and "
        "ports: it decides (or passes) every connection this rule matches, so this rule never "
        "applies.",
        "delete the shadowed rule, or move it before the broader one (lower priority number)",
    ),
    LintRule(
        "KF016",
        "baseline-deny-overridden",
        Severity.WARNING,
        "Baseline Deny that NetworkPolicy always overrides",
        "Every pod this Baseline rule's policy selects is isolated for that direction by a "
        "NetworkPolicy, which decides before the Baseline tier: the Deny never applies to any "
        "pod of the input.",
        "delete the rule, or move the guarantee to the Admin tier if tenants must not undo it",
    ),
    LintRule(
        "KF017",
        "admin-accept-cross-tenant",
        Severity.WARNING,
        "Admin Accept opens paths between tenants",
        "Without this Admin Accept rule, some pod pairs of two different tenants (namespaces "
        "with different --tenant-label values, or two different namespaces without one) could "
        "not connect on any port; with it they can, and no tenant NetworkPolicy can close them.",
        "narrow the rule's peers or ports to what must cross tenants",
    ),
    LintRule(
        "KF018",
        "tier-pass-to-nothing",
        Severity.INFO,
        "Pass rule with nothing after it to decide",
        "A Pass hands the connection to the next tier, but for every pod this policy selects "
        "nothing follows in that direction (no NetworkPolicy isolates it and no Baseline rule "
        "selects it; after the Baseline tier only the default remains): the Pass allows, as an "
        "Accept would.",
        "write Accept if allowing is meant, or add the NetworkPolicy or Baseline rule the Pass "
        "was meant to reach",
    ),
)

RULES_BY_ID: dict[str, LintRule] = {rule.id: rule for rule in RULES}
