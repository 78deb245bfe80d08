"""cryoplan.imaging."""
