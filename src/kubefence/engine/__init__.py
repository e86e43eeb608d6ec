"""Vectorised whole-cluster reachability (numpy): the semantic core's answers for every pair."""
