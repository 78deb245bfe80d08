"""cryoplan.service."""
