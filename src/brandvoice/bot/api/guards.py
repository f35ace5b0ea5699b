"""What every request passes before a route sees it: the bearer token, then a bounded body.

Checking the token here, before anything reads the body, means an anonymous caller learns nothing
from our JSON decoder; bounding the body here means no route ever holds more than the limit.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from brandvoice.bot.api.deps import bearer_problem
from brandvoice.bot.settings import Settings

PROTECTED_PREFIXES = ("/api/", "/v1/")


class RequestGuards:
    """ASGI middleware: 401 for the APIs without the token, 413 for bodies over the limit."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        if path.startswith(PROTECTED_PREFIXES) or path in ("/api", "/v1"):
            problem = bearer_problem(self.settings, headers.get("authorization"))
            if problem is not None:
                response = JSONResponse(
                    {"detail": problem}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        limit = self.settings.max_request_bytes
        declared = headers.get("content-length", "0")
        if not declared.isdigit():
            await JSONResponse({"detail": "Content-Length is not a number"}, 400)(
                scope, receive, send
            )
            return
        if int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"request body is larger than {limit} bytes (MAX_REQUEST_BYTES)"
        await JSONResponse({"detail": detail}, 413)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, once; later calls (disconnect listeners) go to the server."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
