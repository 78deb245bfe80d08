"""Lab bounds: whatever the assessment decides from a bound holds for every value the bound allows."""

from hypothesis import given, settings
from hypothesis import strategies as st
from support.cases import make_case

from cryoplan.clinical import LabBound, assess

examples = settings(max_examples=120, deadline=None, derandomize=True)

ANALYTES = {
    "bilirubin": ("mg/dL", st.sampled_from([0.5, 1.0, 1.9, 2.0, 3.0, 4.0])),
    "albumin": ("g/dL", st.sampled_from([2.8, 3.0, 3.5, 3.9])),
    "platelets": ("10^9/L", st.sampled_from([30.0, 50.0, 51.0, 140.0])),
    "creatinine": ("mg/dL", st.sampled_from([0.8, 1.0, 2.0, 3.5])),
    "sodium": ("mmol/L", st.sampled_from([125.0, 130.0, 137.0, 140.0])),
}


@st.composite
def bound_and_value(draw):
    analyte = draw(st.sampled_from(sorted(ANALYTES)))
    unit, edges = ANALYTES[analyte]
    edge = draw(edges)
    comparator = draw(st.sampled_from(["<", "<=", ">", ">="]))
    # A value the bound allows, from just past the edge to far from it.
    factor = draw(st.floats(min_value=1e-4, max_value=0.99)) if comparator[0] == "<" else draw(st.floats(1.01, 1e3))
    value = edge if comparator in ("<=", ">=") and draw(st.booleans()) else edge * factor
    return LabBound(analyte, comparator, edge, unit), value


@examples
@given(bound_and_value())
def test_what_a_bound_decides_holds_for_every_value_it_allows(drawn):
    bound, value = drawn
    exact = assess(make_case(**{f"labs.{bound.analyte}": {"value": value, "unit": bound.unit}}))
    bounded = assess(make_case(), lab_bounds={bound.analyte: bound})
    for name in ("child_pugh", "albi"):
        if getattr(bounded, name) is not None:
            assert getattr(bounded, name) == getattr(exact, name)
    for name in ("meld", "meld_na", "meld_3"):
        if getattr(bounded.meld, name) is not None:
            assert getattr(bounded.meld, name) == getattr(exact.meld, name)
    for row, exact_row in zip(bounded.criteria, exact.criteria, strict=True):
        if row.status != "unknown":
            assert row.status == exact_row.status
    if bounded.verdict != "mdt_review":
        assert bounded.verdict == exact.verdict
    exact_recs = {(r.id, r.text) for r in exact.recommendations}
    assert all((r.id, r.text) in exact_recs for r in bounded.recommendations)
