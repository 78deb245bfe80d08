"""Messages addressed to users: sent from a case page or the inbox, listed in the recipient's inbox with
their case, counted in every page's header until marked read."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient
from support.service import browser_login

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def page_client(service, role: str) -> tuple[TestClient, str]:
    client = TestClient(service.client.app, follow_redirects=False)
    return client, browser_login(client, role)


def header_count(page: str) -> int:
    match = re.search(r'<span class="badge-count" id="inbox-count">(\d+)</span>', page)
    return int(match.group(1)) if match else 0


def test_a_message_reaches_the_recipients_inbox_and_count(service):
    case = service.create_case("Inbox case")
    sender, csrf = page_client(service, "coordinator")
    sent = sender.post(
        f"/cases/{case['id']}/team-messages",
        data={"csrf_token": csrf, "recipient": "clinician", "body": "Please review the CT before Tuesday."},
    )
    assert sent.status_code == 303 and sent.headers["location"] == f"/cases/{case['id']}"
    assert (
        sender.post(
            "/inbox/send", data={"csrf_token": csrf, "recipient": "clinician", "body": "And lunch?"}
        ).status_code
        == 303
    )

    reader, token = page_client(service, "clinician")
    for path in ("/", "/board", "/tasks", f"/cases/{case['id']}", "/cases/new", "/inbox"):
        assert header_count(reader.get(path).text) == 2, path
    inbox = reader.get("/inbox").text
    items = re.findall(r'<li class="(unread|read)">(.*?)</li>', inbox, re.S)
    assert [state for state, _ in items] == ["unread", "unread"]
    assert "And lunch?" in items[0][1] and "from coordinator" in items[0][1]  # newest first
    assert "Please review the CT" in items[1][1] and f"case {case['id']} Inbox case" in items[1][1]
    first = re.search(r'action="/inbox/(\d+)/read"', inbox).group(1)
    assert reader.post(f"/inbox/{first}/read", data={"csrf_token": token}).status_code == 303
    assert header_count(reader.get("/").text) == 1
    assert header_count(sender.get("/").text) == 0  # the sender's own inbox is empty
    # Nobody marks another user's message read.
    other, other_token = page_client(service, "admin")
    remaining = re.findall(r'action="/inbox/(\d+)/read"', reader.get("/inbox").text)
    assert other.post(f"/inbox/{remaining[0]}/read", data={"csrf_token": other_token}).status_code == 303
    assert header_count(reader.get("/").text) == 1


def test_a_refused_message_keeps_its_text_beside_the_form(service):
    case = service.create_case()
    sender, csrf = page_client(service, "coordinator")
    refused = sender.post(
        f"/cases/{case['id']}/team-messages", data={"csrf_token": csrf, "recipient": "nobody", "body": "Hello there"}
    )
    assert refused.status_code == 422 and "the user name of an active user" in refused.text
    assert ">Hello there</textarea>" in refused.text
    viewer, token = page_client(service, "viewer")
    assert viewer.post("/inbox/send", data={"csrf_token": token, "recipient": "admin", "body": "x"}).status_code == 403
