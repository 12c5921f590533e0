"""What stands in front of Gradio: no uploads, bounded request bodies, throttled logins.

The app has no upload widget, but Gradio serves its upload routes anyway:
``curl -F files=@big.bin .../gradio_api/upload`` stored 200 MB in 0.7 s, with
no login when ``--auth`` is not set, and Gradio has no switch to turn them
off. :class:`RequestGuard`, an ASGI middleware handed to Gradio's FastAPI app
(``launch(app_kwargs={"middleware": ...})``), refuses them before a byte of
the body is read; it also refuses any other request body over
MAX_REQUEST_BYTES, and throttles wrong logins per client address
(:class:`LoginThrottle`), since Gradio's login has no limit of its own.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Gradio's routes that store a client's files (the last two take a recording
# or a component's file); every one is refused, whatever its body.
UPLOAD_ROUTES = ("/upload", "/process_recording", "/component_server")
# The largest request body taken. The biggest an honest client sends is the
# chat's own conversation (its HTML comes back with each question, under 1 kB
# a turn), so 4 MB is thousands of turns; it also bounds what a JSON body can
# make the server parse and hold (a history entry, an outlet list).
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Gradio's own upload limit, for a route this guard does not know (a later
# Gradio's): such an upload stores at most this much.
GRADIO_MAX_FILE_SIZE = "1kb"
# A login form holds a user name and a password.
MAX_LOGIN_BYTES = 16 * 1024
# Wrong logins: five tries are free (typos), then each further try waits for
# a lock that doubles, from one second to five minutes: 30 guesses take an
# hour and a half instead of half a second. A client with no try for an hour
# after its lock ends starts afresh; only the most recent clients are kept.
LOGIN_FREE_TRIES = 5
LOGIN_FIRST_LOCK_SECONDS = 1.0
LOGIN_LONGEST_LOCK_SECONDS = 300.0
LOGIN_FORGET_SECONDS = 3600.0
LOGIN_CLIENTS_KEPT = 10_000
# The same rule over all clients together, with more free tries: a client's
# address is what uvicorn reports, and it takes X-Forwarded-For from a
# connection on 127.0.0.1, so a local client can claim a new address for
# every try. Past this many failures everyone waits (an attack locks out the
# real user for a while, rather than the password falling).
LOGIN_FREE_TRIES_FOR_ALL = 30


@dataclass
class _Tries:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Per client: the first ``free`` logins are checked at once, then one per lock, each twice as long.

    All clients together get ``free_for_all`` under the same rule. A try
    counts as failed from the moment it is let through until the app says it
    succeeded, so a burst of tries sent at once gets no more than the free
    ones checked. Gradio's login callback sees no request, so the client is
    the connection's address (behind a reverse proxy, the one it forwards).
    """

    def __init__(
        self,
        free: int = LOGIN_FREE_TRIES,
        free_for_all: int = LOGIN_FREE_TRIES_FOR_ALL,
        base_seconds: float = LOGIN_FIRST_LOCK_SECONDS,
        longest_seconds: float = LOGIN_LONGEST_LOCK_SECONDS,
        forget_seconds: float = LOGIN_FORGET_SECONDS,
        kept: int = LOGIN_CLIENTS_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.free_for_all = free, free_for_all
        self.base, self.longest, self.forget, self.kept = base_seconds, longest_seconds, forget_seconds, kept
        self._clock = clock
        self._tries: OrderedDict[str, _Tries] = OrderedDict()
        self._everyone = _Tries()

    def attempt(self, client: str) -> float:
        """Seconds ``client`` must wait before a login is checked; 0.0: check it now (counted as failed)."""
        now = self._clock()
        mine = self._tries.pop(client, None) or _Tries()
        self._tries[client] = mine = self._fresh(mine, now)
        while len(self._tries) > self.kept:
            self._tries.popitem(last=False)
        self._everyone = everyone = self._fresh(self._everyone, now)
        wait = max(mine.locked_until, everyone.locked_until) - now
        if wait > 0:
            return wait
        self._count(mine, self.free, now)
        self._count(everyone, self.free_for_all, now)
        return 0.0

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s failures, and uncount its try from everyone's: it has logged in."""
        if self._tries.pop(client, None) is not None:
            self._everyone.count = max(0, self._everyone.count - 1)

    def _fresh(self, tries: _Tries, now: float) -> _Tries:
        """``tries``, or a clean slate after ``forget`` seconds with no try and no lock."""
        return _Tries() if now - max(tries.last, tries.locked_until) > self.forget else tries

    def _count(self, tries: _Tries, free: int, now: float) -> None:
        """Count one try; from the ``free``-th on, lock for twice as long as the last time."""
        tries.count += 1
        tries.last = now
        if tries.count >= free:
            tries.locked_until = now + min(self.longest, self.base * 2 ** (tries.count - free))


class RequestGuard:
    """ASGI middleware: refuse uploads and oversized bodies, throttle logins; pass everything else on."""

    def __init__(self, app: ASGIApp, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        is_login = scope["method"] == "POST" and path.endswith("/login")
        refusal = _refusal(scope, path, MAX_LOGIN_BYTES if is_login else MAX_REQUEST_BYTES, is_login)
        if refusal is not None:
            await _reply(send, *refusal)
            return
        if not is_login:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("",))[0]
        wait = self.throttle.attempt(client)
        if wait > 0:
            seconds = math.ceil(wait)
            message = f"Too many failed logins; try again in {seconds} s."
            await _reply(send, 429, message, ((b"retry-after", str(seconds).encode()),))
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status == [200]:
            self.throttle.succeeded(client)


def _refusal(scope: Scope, path: str, limit: int, is_login: bool) -> tuple[int, str] | None:
    """The status and message a request is refused with, or None to let it through."""
    headers = dict(scope.get("headers") or [])
    if path.endswith(UPLOAD_ROUTES) or (
        headers.get(b"content-type", b"").startswith(b"multipart/") and not is_login
    ):
        return 403, "This app takes no file uploads."
    length = headers.get(b"content-length")
    if length is None and b"transfer-encoding" in headers:
        return 411, "A request body needs a Content-Length."
    if length is not None and (not length.isdigit() or int(length) > limit):
        return 413, f"A request body may be at most {limit} bytes."
    return None


async def _reply(
    send: Send, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer with ``{"detail": message}``, as FastAPI's own errors do, without reading the body."""
    body = json.dumps({"detail": message}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*start, *headers]})
    await send({"type": "http.response.body", "body": body})
