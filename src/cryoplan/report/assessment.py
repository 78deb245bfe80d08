"""The eligibility assessment as a standalone HTML page (inline style, no external resources)."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, select_autoescape

from cryoplan import __version__
from cryoplan.case import Case
from cryoplan.clinical import Assessment

_environment = Environment(
    loader=PackageLoader("cryoplan.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_assessment_html(assessments: list[Assessment], cases: list[Case]) -> str:
    """Render assessments (with the cases they came from, in the same order) as one HTML page.

    All text from the case files is escaped.
    """
    if len(assessments) != len(cases):
        raise ValueError("one case per assessment")
    items = [{"assessment": a, "case": c} for a, c in zip(assessments, cases)]
    return _environment.get_template("assessment.html.j2").render(items=items, version=__version__)
