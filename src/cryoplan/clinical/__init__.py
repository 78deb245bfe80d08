"""cryoplan.clinical."""
