"""cryoplan.report."""
