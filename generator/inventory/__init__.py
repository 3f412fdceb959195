"""The cluster inventory: loading snapshots (load), reading a live cluster (live), the
typed model (model) and the lookups the resolver and synthesizer use (index)."""
