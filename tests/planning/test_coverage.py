"""Coverage metrics on temperature fields whose isotherms are known exactly."""

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.planning.coverage import (
    RiskLimits,
    coverage,
    coverage_curve,
    isotherm_depth_mm,
    lesion_coverage,
    signed_distance_mm,
)

SPACING = np.array([0.8, 1.0, 1.5])  # anisotropic on purpose
SHAPE = (70, 56, 38)
CENTRE = np.array([28.0, 28.0, 28.5])


def radius_field(centre=CENTRE):
    index = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), axis=-1)
    return np.linalg.norm(index * SPACING - centre, axis=-1)


def spherical_temperature(r):
    """T = −60 + 4 r °C: the −20 °C isotherm at r = 10 mm, the ice edge (0 °C) at 15 mm."""
    return (-60.0 + 4.0 * r).astype(np.float32)


@pytest.mark.parametrize("offset", [0.0, 1.5, 3.0])
def test_lethal_and_ice_margins_match_the_geometry(offset):
    temperature = spherical_temperature(radius_field())
    tumour = radius_field(CENTRE + np.array([offset, 0, 0])) <= 6.0
    result = lesion_coverage(temperature, tumour, SPACING, margin_mm=3.0)
    # The nearest tumour voxel centre to the edge lies within one voxel of the exact sphere surface.
    assert result.min_margin_mm == pytest.approx(10.0 - 6.0 - offset, abs=0.9)
    assert result.ice_min_margin_mm == pytest.approx(15.0 - 6.0 - offset, abs=0.9)
    assert result.tumour_covered_pct == 100.0
    assert result.margin_covered_pct == (100.0 if offset <= 0.5 else pytest.approx(result.margin_covered_pct))
    assert result.min_margin_mm < result.mean_margin_mm < result.ice_mean_margin_mm


def test_margin_shell_coverage_is_the_volume_ratio():
    temperature = spherical_temperature(radius_field())
    tumour = radius_field() <= 6.0
    result = lesion_coverage(temperature, tumour, SPACING, margin_mm=5.0, isotherms_c=(0, -20, -40))
    # tumour + 5 mm is a sphere of 11 mm, the lethal zone one of 10 mm: 1000 / 1331 of it is covered.
    assert result.margin_covered_pct == pytest.approx(100 * 1000 / 1331, abs=3.0)
    # −40 °C reaches r = 5 mm: (5/6)³ of the tumour, and 125/1331 of tumour + margin.
    tumour_pct, margin_pct = result.covered_pct_by_isotherm[-40.0]
    assert tumour_pct == pytest.approx(100 * (5 / 6) ** 3, abs=4.0)
    assert margin_pct == pytest.approx(100 * 125 / 1331, abs=2.0)
    assert result.min_margin_mm == pytest.approx(4.0, abs=0.9)  # short of the 5 mm asked for


def test_a_tumour_outside_the_lethal_zone_has_a_negative_margin():
    temperature = spherical_temperature(radius_field())
    tumour = radius_field(CENTRE + np.array([16.0, 0, 0])) <= 3.0  # 13…19 mm from the centre
    result = lesion_coverage(temperature, tumour, SPACING)
    assert result.min_margin_mm == pytest.approx(-(19.0 - 10.0), abs=0.9)
    assert result.tumour_covered_pct == 0.0


def test_coverage_curve_is_the_cumulative_volume():
    temperature = spherical_temperature(radius_field())
    tumour = radius_field() <= 6.0
    temps, fraction = coverage_curve(temperature, tumour, np.array([-56.0, -48.0, -40.0, -36.0, 0.0]))
    expected = [((t + 60.0) / 4.0 / 6.0) ** 3 for t in temps[:4]] + [1.0]
    np.testing.assert_allclose(fraction, expected, atol=0.06)
    assert np.all(np.diff(fraction) >= 0)


def test_critical_structures_frozen_volume_and_risks():
    radius = radius_field()
    temperature = spherical_temperature(radius)
    tumour = radius <= 6.0
    liver = np.ones(SHAPE, dtype=bool)
    duct_near = (
        (radius >= 8.0) & (radius <= 9.0) & (np.abs(np.arange(SHAPE[1]) * SPACING[1] - 28.0) < 1.0)[None, :, None]
    )
    duct_far = (radius >= 12.0) & (radius <= 13.0)
    vessel = radius_field(CENTRE + np.array([20.0, 0, 0])) <= 2.0  # lumen 18…22 mm from the centre
    voxel_ml = np.prod(SPACING) / 1000
    far = coverage(temperature, SPACING, {"L1": tumour}, liver=liver, bile_duct=duct_far, vessels=vessel)
    assert far.critical.bile_duct_min_temperature_c == pytest.approx(-60 + 4 * 12, abs=1.0)
    # the wall is the tissue touching the lumen: its coldest voxel is ≈ 18 mm − one voxel from the centre
    assert -60 + 4 * 16.5 <= far.critical.vessel_wall_min_temperature_c <= -60 + 4 * 18.0
    assert far.frozen_volume_ml == pytest.approx(4 / 3 * np.pi * 15**3 / 1000, rel=0.03)
    assert far.frozen_liver_ml == pytest.approx(far.frozen_volume_ml - tumour.sum() * voxel_ml, rel=1e-6)
    assert [r.code for r in far.risks] == ["coverage_shortfall"]  # 5 mm margin: 75 % covered
    near = coverage(
        temperature,
        SPACING,
        {"L1": tumour},
        liver=liver,
        bile_duct=duct_near,
        margin_mm=3.0,
        heat_sink_lesions={"L1": "portal vein 8 mm at 4 mm"},
        limits=RiskLimits(cryoshock_frozen_ml=10.0),
    )
    codes = {r.code for r in near.risks}
    assert codes == {"biloma", "heat_sink", "cryoshock"}


def test_isotherm_depth_behind_the_ice_edge():
    temperature = spherical_temperature(radius_field())
    assert isotherm_depth_mm(temperature, SPACING, -20.0) == pytest.approx(5.0, abs=0.8)
    assert isotherm_depth_mm(temperature, SPACING, -40.0) == pytest.approx(10.0, abs=0.8)


def test_signed_distance_of_a_sphere():
    radius = radius_field()
    distance = signed_distance_mm(radius <= 12.0, SPACING)
    sample = (radius > 3) & (radius < 20)
    # accuracy of a voxel EDT with the edge put half the finest spacing away: largest − finest/2
    np.testing.assert_allclose(distance[sample], 12.0 - radius[sample], atol=SPACING.max() - SPACING.min() / 2)


def test_empty_tumour_and_bad_margin_are_input_errors():
    temperature = spherical_temperature(radius_field())
    with pytest.raises(InputError, match="lesions.L1"):
        lesion_coverage(temperature, np.zeros(SHAPE, bool), SPACING)
    with pytest.raises(InputError, match="margin_mm"):
        lesion_coverage(temperature, radius_field() <= 5, SPACING, margin_mm=-1)
