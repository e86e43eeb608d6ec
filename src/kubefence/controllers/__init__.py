"""The scheduler and the controllers: what turns workload objects into pods on nodes.

Why this package exists: in the sandbox cluster, ``kubectl`` writes Deployments, StatefulSets,
DaemonSets, Services and bare pods; something must place pods on nodes (``scheduler``), make and
remove the pods workloads ask for (``replicasets``, ``deployments``, ``statefulsets``,
``daemonsets``), delete what lost its owner (``garbagecollector``) or its node (``podgc``),
publish each Service's backends (``endpointslices``, and the legacy ``endpoints``) and notice
nodes that stopped heartbeating (``nodelifecycle``).
It is one process, ``python -m kubefence.controllers --kubeconfig F`` (kube-scheduler and
kube-controller-manager in one), an API client like any other: it reaches the control plane
only over HTTPS with its own certificate (CN ``system:kube-controller-manager``) and never
imports ``kubefence.control``. ``manager`` wires the loops to one set of shared informers.
"""
