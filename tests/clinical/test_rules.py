"""The selection criteria and recommendations as tables: every band edge, every rule's source."""

import math
import re

import pytest
from support.cases import lesions, make_case

from cryoplan.clinical import assess
from cryoplan.clinical.eligibility import RECOMMENDATIONS, RULES, Band

# A citation gives the journal's year;volume:pages; "seed" or a file name is not one.
CITATION = re.compile(r"(19|20)\d\d;\d+:\d+-\d+")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_bands_cover_the_line_without_overlap(rule):
    """Each value falls in exactly one band: the table has no gap and no double reading."""
    edges = sorted({e for band in rule.bands for e in (band.lower, band.upper) if math.isfinite(e)})
    probes = [-1e9, 1e9, *edges, *(e - 1e-9 for e in edges), *(e + 1e-9 for e in edges)]
    for value in probes:
        assert sum(band.contains(value) for band in rule.bands) == 1, (rule.id, value)


def test_band_ends():
    band = Band("preferred", "", lower=2, upper=5)
    assert not band.contains(2) and band.contains(5) and band.contains(2.0001) and not band.contains(5.0001)
    band = Band("review", "", lower=2, lower_closed=True, upper=5, upper_closed=False)
    assert band.contains(2) and not band.contains(5)


@pytest.mark.parametrize("rule", [*RULES, *RECOMMENDATIONS], ids=lambda r: r.id)
def test_every_rule_cites_a_paper_or_guideline(rule):
    assert CITATION.search(rule.source), rule.source
    assert "seed" not in rule.source.casefold() and ".md" not in rule.source


def test_criteria_carry_their_rule_source():
    result = assess(make_case(lesions=lesions(35, bile_duct_mm=4), labs__platelets={"value": 30, "unit": "10^9/L"}))
    sources = {rule.id: rule.source for rule in RULES}
    assert [c.id for c in result.criteria] == [rule.id for rule in RULES]
    for row in result.criteria:
        assert row.source == sources[row.id] and row.to_dict()["source"] == row.source
    recommendation_sources = {(r.id, r.source) for r in RECOMMENDATIONS}
    assert all((r.id, r.source) in recommendation_sources for r in result.recommendations)


@pytest.mark.parametrize(
    ("first_mm", "second_mm", "expected"),
    [
        (4, None, "conditional"),  # a known close duct decides even when another lesion's distance is missing
        (20, None, "unknown"),  # the missing one could be closer
        (None, None, "unknown"),
        (20, 6, "preferred"),
    ],
)
def test_bile_duct_rule_with_missing_distances(first_mm, second_mm, expected):
    rows = lesions(20, 10)
    rows[0]["distance_to_bile_duct_mm"], rows[1]["distance_to_bile_duct_mm"] = first_mm, second_mm
    row = next(c for c in assess(make_case(lesions=rows)).criteria if c.id == "bile_duct_distance")
    assert row.status == expected
    assert row.value == (min(d for d in (first_mm, second_mm) if d is not None) if expected != "unknown" else None)


def test_lesions_below_the_minimum_size_are_left_out_and_named():
    speck = {"id": "L9", "diameter_mm": 0.0, "resolution_mm": 1.5, "below_min_size": True}
    result = assess(make_case(lesions=[*lesions(24), speck]))
    assert result.to_dict()["criteria"] == assess(make_case(lesions=lesions(24))).to_dict()["criteria"]
    assert result.input_notes == [
        "lesion L9 (0 mm measured) is below the minimum lesion size: listed, not assessed or planned"
    ]
