"""`flowpol migrate`: a staged, reversible plan from no policies to default-deny."""
