"""Pure compiler: compiled policies + pod addresses -> one nftables ruleset text."""
