"""``python -m kubefence`` runs the command line."""

from kubefence.cli.main import main

raise SystemExit(main())
