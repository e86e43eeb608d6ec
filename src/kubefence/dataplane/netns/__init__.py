"""The only code that runs ip/nft or enters namespaces: the sandbox cluster, apply, probe."""
