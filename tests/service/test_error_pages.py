"""Refusals and errors as browsers and API clients each expect them: an HTML page with a Back link that needs no
script (the Content-Security-Policy allows none inline) for pages, JSON under /api/."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient
from support.service import browser_login

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def back_link(page: str) -> str:
    return re.search(r'<a class="button" id="error-back" href="([^"]*)">Back</a>', page).group(1)


def test_a_refused_page_is_html_with_a_back_link_to_where_the_browser_came_from(service):
    client = TestClient(service.client.app, follow_redirects=False)
    browser_login(client, "viewer")
    refused = client.get("/users", headers={"Referer": "http://testserver/board?board_date=2027-01-05"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert "Not allowed (error 403)" in refused.text and "the viewer role may not do this" in refused.text
    assert back_link(refused.text) == "/board?board_date=2027-01-05"
    assert "script-src 'self'" in refused.headers["content-security-policy"] and "javascript:" not in refused.text
    # Another site's page, or none, is not where Back leads: the case list is.
    assert back_link(client.get("/users", headers={"Referer": "https://elsewhere.example/x"}).text) == "/"
    assert back_link(client.get("/users").text) == "/"
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "Not found (error 404)" in missing.text
    invalid = client.get("/", params={"page": "0"})
    assert invalid.status_code == 422 and "Not accepted (error 422)" in invalid.text and "page:" in invalid.text


def test_the_api_answers_json(service):
    refused = service.client.get("/api/users", headers=service.headers("viewer"))
    assert refused.status_code == 403 and refused.json() == {"detail": "the viewer role may not do this"}
    assert service.client.get("/api/no-such").json() == {"detail": "Not Found"}
    invalid = service.client.get("/api/cases", params={"page": "0"}, headers=service.headers("viewer"))
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["query", "page"]
    anonymous = service.client.get("/api/cases")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
