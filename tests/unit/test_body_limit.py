"""The served model's body limit, as ASGI: refused from the header, or mid-body when chunked."""

from __future__ import annotations

import asyncio
import json

from ferops.registry.body_limit import BodyLimit


def call(middleware: BodyLimit, headers: list, chunks: list[bytes]) -> list:
    """Run one POST, its body in `chunks`, through `middleware`; return what it sent."""
    sent: list = []
    pieces = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
              for i, c in enumerate(chunks)]  # fmt: skip

    async def receive():
        return pieces.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return sent


def reading_app(seen: list):
    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def test_a_body_announced_over_the_limit_is_refused_unread():
    seen: list = []
    sent = call(BodyLimit(reading_app(seen), 1000), [(b"content-length", b"200000000")], [b""])
    assert sent[0]["status"] == 413 and seen == []  # the app never ran
    assert "FEROPS_MAX_REQUEST_BYTES" in json.loads(sent[1]["body"])["message"]


def test_a_chunked_body_is_stopped_as_it_passes_the_limit_and_a_small_one_passes():
    seen: list = []
    sent = call(BodyLimit(reading_app(seen), 1000), [], [b"x" * 600] * 5)
    assert sent[0]["status"] == 413 and seen == [600]  # the second piece was never handed on
    seen.clear()
    sent = call(BodyLimit(reading_app(seen), 1000), [], [b"x" * 400, b"x" * 400])
    assert sent[0]["status"] == 200 and seen == [400, 400]
