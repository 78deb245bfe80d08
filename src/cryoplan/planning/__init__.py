"""cryoplan.planning: probe placement, coverage and margins, uncertainty, intraprocedural verification."""

from cryoplan.planning.pipeline import plan_case

__all__ = ["plan_case"]
