"""Helpers of the physics validations: tissue properties drawn at random within physical ranges."""

from __future__ import annotations

import numpy as np

from cryoplan.thermal import Tissue


def random_frozen_tissue(rng: np.random.Generator, *, single_temperature: bool, perfusion_1_s: float = 0.0) -> Tissue:
    """Tissue properties drawn uniformly within physical ranges around the baseline liver (Micromachines
    2025;16:1321)."""
    t_l = float(rng.uniform(-2.0, 0.0))
    return Tissue(
        name="drawn",
        conductivity_unfrozen_w_mk=float(rng.uniform(0.4, 0.6)),
        conductivity_frozen_w_mk=float(rng.uniform(1.6, 2.4)),
        density_unfrozen_kg_m3=1000.0,
        density_frozen_kg_m3=1000.0,
        specific_heat_unfrozen_j_kgk=float(rng.uniform(3300.0, 4000.0)),
        specific_heat_frozen_j_kgk=float(rng.uniform(1600.0, 2100.0)),
        latent_heat_j_m3=float(rng.uniform(150e6, 334e6)),
        solidus_c=t_l if single_temperature else t_l - float(rng.uniform(3.0, 8.0)),
        liquidus_c=t_l,
        perfusion_1_s=perfusion_1_s,
        metabolic_heat_w_m3=0.0,
    )
