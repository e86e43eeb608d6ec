"""``python -m kubefence.agent --node NAME [--kubeconfig F] [--netns NS]``: run the agent."""

from __future__ import annotations

import sys

from kubefence.agent._main import main

if __name__ == "__main__":
    sys.exit(main())
