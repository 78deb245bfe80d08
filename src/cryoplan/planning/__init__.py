"""cryoplan.planning."""
