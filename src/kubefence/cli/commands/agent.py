"""``kubefence agent --node NAME ...``: run the policy agent in this process.

Why this module exists: users and the sandbox's nodes start the agent the same way they run
every kubefence command. The CLI starts no process, so this command calls the agent's ``run``
in-process (the same function ``python -m kubefence.agent`` calls) and blocks until SIGTERM.
The options are the agent's own (``kubefence.agent.add_arguments``).
"""

from __future__ import annotations

import argparse

NAME = "agent"
HELP = "run the policy agent for one node: enforce what an API server stores, until stopped"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kubefence.agent import add_arguments as agent_arguments

    agent_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from kubefence.agent import run as run_agent

    return run_agent(args)
