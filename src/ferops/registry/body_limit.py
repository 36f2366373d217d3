"""A request body over the limit is refused before it is read, let alone parsed.

MLflow's scoring app reads the whole body, then parses it as JSON into Python objects and a
DataFrame: a 200 MB body took the worker to 1.57 GB before the pyfunc could say 400. This ASGI
middleware answers 413 from the Content-Length header alone, and stops a body sent without one
(chunked) as soon as it passes the limit. MLflow offers no such setting, and `mlflow models
serve` builds its FastAPI app itself, after loading the model; so the served model's
`load_context` asks for the middleware (`limit_next_app`), and the app gets it as it is built.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: HTTP 413 for a body over `max_bytes`, read no further."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self.refuse(send, int(length))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if not started:
                await self.refuse(send, received)

    async def refuse(self, send: Send, size: int) -> None:
        body = json.dumps(
            {
                "error_code": "INVALID_PARAMETER_VALUE",
                "message": f"request body of {size} bytes or more; at most {self.max_bytes} "
                "bytes (FEROPS_MAX_REQUEST_BYTES, as base64 JSON): send fewer or smaller images",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def limit_next_app(max_bytes: int) -> None:
    """Give the next FastAPI app built in this process (the scoring server's, built right
    after the model loads) the body limit; later apps are left alone."""
    import fastapi

    original = fastapi.FastAPI
    if getattr(original, "ferops_body_limit", False):
        return

    class LimitedFastAPI(original):  # type: ignore[misc, valid-type]
        ferops_body_limit = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_middleware(BodyLimit, max_bytes=max_bytes)
            fastapi.FastAPI = original  # one app only

    fastapi.FastAPI = LimitedFastAPI
