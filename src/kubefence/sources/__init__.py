"""Where manifests come from: files, directories and stdin (later a live cluster)."""
