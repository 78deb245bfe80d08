"""cryoplan.thermal."""
