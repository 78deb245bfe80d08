"""Protocols, the tissue library, medium files and grids."""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan.errors import InputError
from cryoplan.thermal import (
    DEFAULT_PROTOCOL,
    PROBES,
    TISSUES,
    Grid,
    ProbePlacement,
    get_probe,
    load_medium,
    parse_protocol,
)


def test_parse_protocol_phases_and_flow():
    protocol = parse_protocol("freeze:10@0.5, passive_thaw:5, active_thaw:1.5, freeze:10")
    assert [(p.kind, p.minutes, p.flow_fraction) for p in protocol.phases] == [
        ("freeze", 10.0, 0.5),
        ("passive_thaw", 5.0, 1.0),
        ("active_thaw", 1.5, 1.0),
        ("freeze", 10.0, 1.0),
    ]
    assert protocol.total_seconds == pytest.approx(60 * 26.5)
    assert str(DEFAULT_PROTOCOL) == "freeze:10,passive_thaw:5,freeze:10"


@pytest.mark.parametrize(
    "text, field",
    [
        ("freeze:-5", "protocol[0].minutes"),
        ("freeze:10,thaw:5", "protocol[1].kind"),
        ("freeze:x", "protocol[0].minutes"),
        ("freeze:10@1.5", "protocol[0].flow_fraction"),
        ("freeze:nan", "protocol[0].minutes"),
        ("", "protocol"),
    ],
)
def test_bad_protocols_name_the_phase(text, field):
    with pytest.raises(InputError) as error:
        parse_protocol(text)
    assert error.value.field == field


def test_baseline_liver_values_and_steady_temperature():
    baseline = TISSUES["liver_baseline"]
    assert (baseline.conductivity_unfrozen_w_mk, baseline.conductivity_frozen_w_mk) == (0.5, 2.0)
    assert baseline.latent_heat_j_m3 == 250e6 and (baseline.solidus_c, baseline.liquidus_c) == (-8.0, -1.0)
    assert baseline.steady_temperature_c == pytest.approx(37 + 4200 / 1800)  # ω_b = 5e-4 1/s: 39.3 °C
    # In vivo liver: the baseline with the calibrated perfusion, which holds it near arterial temperature.
    liver = TISSUES["liver"]
    assert liver.replace(perfusion_1_s=baseline.perfusion_1_s) == baseline.replace(name="liver")
    assert liver.perfusion_1_s > baseline.perfusion_1_s
    assert liver.steady_temperature_c == pytest.approx(37 + 4200 / (liver.perfusion_1_s * 3.6e6))
    assert liver.replace(latent_heat_j_m3=150e6).latent_heat_j_m3 == 150e6
    assert liver.latent_heat_j_m3 == 250e6  # immutable


def test_organ_library_has_perfusion_with_units_and_frozen_properties():
    for name in ("fat", "muscle", "kidney", "lung", "bone", "vessel_wall"):
        tissue = TISSUES[name]
        assert tissue.perfusion_1_s > 0
        # Ice conducts better and stores less heat than water: frozen tissue gains k and loses C.
        assert tissue.conductivity_frozen_w_mk > tissue.conductivity_unfrozen_w_mk
        assert tissue.heat_capacity_frozen_j_m3k < tissue.heat_capacity_unfrozen_j_m3k
        assert 0 < tissue.latent_heat_j_m3 < 334e6
    # Fat holds little water, so little latent heat; kidney is perfused far more than fat.
    assert TISSUES["fat"].latent_heat_j_m3 < 0.3 * TISSUES["muscle"].latent_heat_j_m3
    assert TISSUES["kidney"].perfusion_1_s > 10 * TISSUES["fat"].perfusion_1_s


def test_enthalpy_and_kirchhoff_are_consistent():
    liver = TISSUES["liver"]
    t = np.linspace(-150, 40, 2001)
    h = liver.enthalpy_j_m3(t)
    assert np.all(np.diff(h) > 0)
    jump = liver.enthalpy_j_m3(-1.0) - liver.enthalpy_j_m3(-8.0)
    assert jump == pytest.approx(250e6 + 0.5 * (1.8e6 * 0.998 + 3.6e6) * 7, rel=1e-12)
    phi = liver.kirchhoff_w_m(t, -150.0)
    assert np.allclose(np.gradient(phi, t)[1:-1], liver.conductivity_w_mk(t)[1:-1], atol=0.01)


def test_medium_file_keeps_liver_baseline_for_missing_keys(tmp_path):
    path = tmp_path / "medium.yaml"
    path.write_text(
        "name: custom\nconductivity_w_mk: {unfrozen: 0.55}\nphase_change_c: {solidus: -2.0, liquidus: -2.0}\n"
    )
    medium = load_medium(path)
    assert medium.name == "custom" and medium.conductivity_unfrozen_w_mk == 0.55
    assert medium.conductivity_frozen_w_mk == 2.0 and medium.solidus_c == medium.liquidus_c == -2.0


@pytest.mark.parametrize(
    "text, field",
    [
        ("conductivity_w_mk: {unfrozen: 0.5}\nperfusion: 1\n", "medium (m.yaml).perfusion"),
        ("conductivity_w_mk: {liquid: 0.5}\n", "medium (m.yaml).conductivity_w_mk.liquid"),
        ("conductivity_w_mk: {frozen: -2}\n", "medium (m.yaml).conductivity_w_mk.frozen"),
        ("phase_change_c: {solidus: 0, liquidus: -5}\n", "medium (m.yaml)"),
    ],
)
def test_bad_medium_files_name_the_key(tmp_path, text, field):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_medium(path)
    assert error.value.field == field


def test_grid_around_covers_points_and_affine_is_lps():
    grid = Grid.around([[0, 0, 0], [10, -5, 3]], margin_mm=5.0, spacing_mm=0.5)
    assert np.all(grid.origin_mm <= [-5, -10, -5]) and np.all(grid.extent_mm >= [15, 5, 8])
    assert np.allclose(grid.affine @ [2, 3, 4, 1], [*(grid.origin_mm + 0.5 * np.array([2, 3, 4])), 1])
    assert np.allclose(grid.centres_mm()[2, 3, 4], grid.origin_mm + [1.0, 1.5, 2.0])


def test_probe_library_spans_clinical_practice():
    assert len(PROBES) >= 4
    diameters = sorted(p.diameter_mm for p in PROBES.values())
    assert diameters[0] == pytest.approx(1.47) and 1.7 in diameters and 2.4 in diameters
    seventeen = [p for p in PROBES.values() if p.diameter_mm == pytest.approx(1.47)]
    assert min(p.active_length_mm for p in seventeen) < max(p.active_length_mm for p in seventeen)
    with pytest.raises(InputError) as error:
        get_probe("ice-rod-x")
    assert error.value.field == "probe"


def test_placement_normalises_direction_and_rejects_zero():
    placement = ProbePlacement("17g-rod", [1, 2, 3], [0, 0, -2])
    assert np.allclose(placement.direction, [0, 0, -1])
    distal, proximal = placement.active_segment_mm()
    probe = PROBES["17g-rod"]
    assert np.allclose(distal, [1, 2, 3 + probe.tip_offset_mm])
    assert np.allclose(proximal, [1, 2, 3 + probe.tip_offset_mm + probe.cooled_length_mm])
    with pytest.raises(InputError):
        ProbePlacement("17g-rod", [0, 0, 0], [0, 0, 0])
