"""One sandbox node: the node component ("kubelet-lite") and what runs beside it.

Why this package exists: in the sandbox cluster each node is a network namespace with its own pod
CIDR, and one process per node turns the pods the API server binds to it into network namespaces
with real processes, keeps their status, serves exec/attach/logs, programs Service DNAT and runs
cluster DNS. It is an API client like a kubelet: it reaches the control plane only over HTTPS
with its node certificate (it never imports ``kubefence.control``).
"""
