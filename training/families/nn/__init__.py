"""Model modules (no I/O): the v1 late-fusion network and the v2 multi-head transformer."""
