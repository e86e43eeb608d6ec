"""The control plane: a Kubernetes-compatible API server over HTTPS, its stores and its PKI.

It exists so that real clients (kubectl, the official Python client, later kubefence's own node
and policy agents) can talk to kubefence the way they talk to a cluster. It sits below `cli` and
may import `api`, `semantics` and `errors`; nothing below it imports it.
"""
