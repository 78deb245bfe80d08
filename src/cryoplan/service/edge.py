"""The service's edge: checks made on every request before any route, authentication or body parsing runs.

`RequestLimits` is a pure ASGI middleware. It refuses cross-site writes (a browser's Origin or
Sec-Fetch-Site naming another site), refuses an upload that carries no credentials at all before reading
it, counts every body's bytes as they arrive, with or without a Content-Length, against the limit of its
route (document uploads may be large, everything else is small), and refuses JSON nested deeper than a
bound before any parser recurses into it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryoplan.service.auth import SESSION_COOKIE

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# The only routes that take a large body: a document upload to a case, on the API or from the case page.
UPLOAD_PATH = re.compile(r"/(api/)?cases/[0-9]+/documents")
# Form fields that hold a JSON document (the case page's editor).
JSON_FORM_FIELDS = ("case_document",)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


class BodyTooLarge(HTTPException):
    """The body grew past its route's limit while it was being received: raised from the app's receive, it
    ends the request with 413 wherever the body is being read (FastAPI passes HTTP exceptions through)."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text, found without parsing it (brackets inside
    strings do not count), so that a document nested a million deep costs one linear scan."""
    codes = np.frombuffer(_JSON_STRING.sub(b'""', body), dtype=np.uint8)
    if codes.size == 0:
        return 0
    step = np.isin(codes, (ord("["), ord("{"))).astype(np.int32) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))


def has_credentials(headers: Headers) -> bool:
    """Whether a request carries a bearer token or a session cookie (checked later, by the route)."""
    cookies = headers.get("cookie", "")
    return headers.get("authorization", "").lower().startswith("bearer ") or f"{SESSION_COOKIE}=" in cookies


def same_site(headers: Headers) -> bool:
    """Whether a state-changing request may come from this site: browsers name the page that sent it in
    Origin (and Sec-Fetch-Site); a request without them is not from a browser page (an API client).

    References
    ----------
    .. [1] OWASP Cross-Site Request Forgery Prevention Cheat Sheet, "Verifying origin with standard headers"
       and "Fetch Metadata headers".
    """
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc == headers.get("host", "")


class RequestLimits:
    """ASGI middleware bounding each request before the app sees it.

    Parameters
    ----------
    app : ASGIApp
        The application.
    max_body_bytes : int
        Largest body of any request but a document upload (413 beyond).
    max_upload_bytes : int
        Largest body of a document upload (`UPLOAD_PATH`; 413 beyond).
    max_json_depth : int
        Deepest nesting of a JSON body, or of a JSON form field (422 beyond).
    respond : callable
        ``respond(scope, status, message)`` gives the ASGI response app for a refusal.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        max_json_depth: int,
        respond: Callable[[Scope, int, str], ASGIApp],
    ):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_json_depth = max_json_depth
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not same_site(headers):
            await self.respond(scope, 403, "cross-site request refused")(scope, receive, send)
            return
        upload = UPLOAD_PATH.fullmatch(scope["path"]) is not None
        if upload and not has_credentials(headers):  # nobody may make the server store a large body anonymously
            if scope["path"].startswith("/api/"):
                refusal: Response = JSONResponse(
                    {"detail": "not authenticated"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
            else:
                refusal = RedirectResponse("/login", status_code=303)
            await refusal(scope, receive, send)
            return
        limit = self.max_upload_bytes if upload else self.max_body_bytes
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await self.respond(scope, 413, f"request body larger than {limit} bytes")(scope, receive, send)
            return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json" or content_type.endswith("+json"):
            await self._checked_document(scope, receive, send, limit, "json")
        elif content_type == "application/x-www-form-urlencoded":
            await self._checked_document(scope, receive, send, limit, "form")
        else:
            await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Pass the body through as it streams, counting it: past `limit`, the request ends with 413."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as refusal:  # read outside a route's handler, so not answered by the app
            if started:  # a response already began: nothing more can be said on this connection
                raise
            await self.respond(scope, 413, refusal.detail)(scope, receive, send)

    async def _checked_document(self, scope: Scope, receive: Receive, send: Send, limit: int, kind: str) -> None:
        """Read a small body whole (at most `limit` bytes), check its JSON nesting, then hand it on."""
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > limit:
                await self.respond(scope, 413, f"request body larger than {limit} bytes")(scope, receive, send)
                return
            more = message.get("more_body", False)
        body = b"".join(chunks)
        documents = [body] if kind == "json" else _json_form_fields(body)
        if any(json_depth(document) > self.max_json_depth for document in documents):
            detail = f"JSON nested at most {self.max_json_depth} levels deep"  # `message` is the ASGI message
            await self.respond(scope, 422, detail)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _json_form_fields(body: bytes) -> list[bytes]:
    """The values of the form fields that hold JSON (`JSON_FORM_FIELDS`), as bytes."""
    fields = parse_qsl(body.decode("latin-1"), keep_blank_values=True)
    return [value.encode("latin-1", errors="replace") for name, value in fields if name in JSON_FORM_FIELDS]


def _replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive callable that gives `body` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
