"""Command line: subcommands, rendering (tables, JSON, CSV, DOT, SARIF) and exit codes."""
