"""Package data: the manifest of known VGG weight files (URLs, file hashes, per-layer SHA-256)."""
