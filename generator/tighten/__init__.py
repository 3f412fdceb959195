"""`flowpol diff`: an existing policy set against observed traffic, and a tightened set."""
