"""One HTTP attempt at one image: timeouts, a size limit, redirects, opt-outs, and a classified outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import os
import re
import sys
import time
from dataclasses import dataclass
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin

import aiohttp

from gbifxdl._meta import USER_AGENT
from gbifxdl.fetch.settings import DEFAULT_USER_AGENT, FetchSettings

T = TypeVar("T")

if TYPE_CHECKING:
    from gbifxdl.fetch._seams import Gate


@dataclass(frozen=True)
class Attempt:
    """The result of one attempt: the body, or a failure kind saying whether to retry."""

    data: list[bytes] | None     # the body as it arrived, never joined (a join copies it all)
    outcome: str                 # "ok" or a failure kind
    error: str | None = None
    status: int | None = None
    transient: bool = False      # worth another attempt
    throttle: bool = False       # the host asked us to slow down (429/503)
    retry_after: float | None = None
    host: str | None = None      # the host that gave this answer (after redirects)
    location: str | None = None  # a redirect's Location (outcome "redirect", between hops only)


def user_agent(contact: str | None) -> str:
    """Return gbifxdl's User-Agent naming ``contact`` (an e-mail address) when given.

    Operators write to the contact before they block a client, and some hosts (Wikimedia)
    refuse clients without one.
    """
    contact = (contact or "").strip()
    if not contact:
        return USER_AGENT
    contact = contact if ":" in contact else f"mailto:{contact}"
    return f"{USER_AGENT[:-1]}; {contact})" if USER_AGENT.endswith(")") else f"{USER_AGENT} ({contact})"


def session_user_agent(settings: FetchSettings) -> str:
    """Return the User-Agent a fetch sends: the setting, else gbifxdl's with the contact
    (the ``contact`` setting, else ``$GBIF_EMAIL``)."""
    if settings.user_agent != DEFAULT_USER_AGENT:
        return settings.user_agent
    return user_agent(settings.contact or os.environ.get("GBIF_EMAIL"))


def make_session(settings: FetchSettings, trace_configs: list[aiohttp.TraceConfig] | None = None) -> aiohttp.ClientSession:
    """Return the one HTTP client of a fetch: shared connections, DNS cache, per-read timeouts."""
    connector = aiohttp.TCPConnector(
        # per-host limits are the scheduler's (slots and rate, redirects included)
        limit=settings.connections, limit_per_host=0, ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout,
                                    sock_read=settings.read_timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"User-Agent": session_user_agent(settings)},
        trace_configs=trace_configs,
        auto_decompress=True, raise_for_status=False,
        # bodies are read whole as they arrive: a buffer big enough for a typical image
        # spares pausing and resuming the socket (a syscall each) several times per body
        read_bufsize=1 << 20,
    )


async def attempt(session: aiohttp.ClientSession, url: str, settings: FetchSettings,
                  gate: Gate | None = None) -> Attempt:
    """Return the outcome of one GET of ``url``, following redirects by hand.

    With a ``gate``, every request (the first and each redirect's) waits there for its
    host's slot and rate first; ``total_timeout`` bounds each request, not that wait.
    """
    try:
        return await _get(session, url, settings, gate)
    except aiohttp.ServerTimeoutError as exc:
        return Attempt(None, "timeout", f"timed out: {_short(exc)}", transient=True)
    except asyncio.TimeoutError:
        return Attempt(None, "timeout", f"no complete answer within {settings.total_timeout:g} s", transient=True)
    except aiohttp.InvalidURL as exc:
        return Attempt(None, "bad_redirect", f"invalid URL: {exc}")
    except aiohttp.ClientPayloadError as exc:
        return Attempt(None, "connection", f"body cut short: {_short(exc)}", transient=True)
    except aiohttp.ClientConnectorError as exc:  # refused, or no such name: the host is gone, not the image
        kind = "connection" if isinstance(exc, aiohttp.ClientSSLError) else "unreachable_host"
        return Attempt(None, kind, f"{type(exc).__name__}: {_short(exc)}", transient=True)
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(None, "connection", f"{type(exc).__name__}: {_short(exc)}", transient=True)


async def _within(seconds: float, coro: Awaitable[T]) -> T:
    """Await ``coro`` with a deadline (asyncio.TimeoutError past it)."""
    if sys.version_info >= (3, 11):
        # asyncio.timeout runs it in this task; wait_for (before 3.12) made a task per attempt
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


async def _get(session: aiohttp.ClientSession, url: str, settings: FetchSettings, gate: Gate | None) -> Attempt:
    seen = {url}
    current = url
    status = None
    for _ in range(settings.max_redirects + 1):
        if not current[:8].lower().startswith(("http://", "https://")):
            return Attempt(None, "bad_redirect", f"will not follow a redirect to {current!r} (http and https only)")
        host = host_of(current)
        ticket = await gate.enter(host) if gate is not None else None
        answer: Attempt | None = None
        try:
            answer = await _within(settings.total_timeout, _request(session, current, settings))
        finally:
            if ticket is not None:
                gate.leave(ticket, answer, sum(map(len, answer.data)) if answer and answer.data else 0)
        if answer.outcome != "redirect":
            return answer
        status = answer.status
        location = answer.location or ""
        if not location:
            return Attempt(None, "bad_redirect", f"HTTP {status} without a Location", status=status, host=host)
        nxt = urljoin(current, location)
        if nxt in seen:
            return Attempt(None, "redirect_loop", f"redirect loop back to {nxt}", status=status, host=host)
        seen.add(nxt)
        current = nxt
    return Attempt(None, "redirect_loop", f"more than {settings.max_redirects} redirects (max_redirects)", status=status)


async def _request(session: aiohttp.ClientSession, url: str, settings: FetchSettings) -> Attempt:
    """Return one request's answer; a redirect is outcome ``redirect`` with its ``location``."""
    host = host_of(url)
    async with session.get(url, allow_redirects=False) as resp:
        status = resp.status
        if status in (301, 302, 303, 307, 308):
            return Attempt(None, "redirect", status=status, host=host, location=resp.headers.get("Location"))
        if status != 200:
            return _status_failure(resp, host)
        if settings.respect_opt_out:
            directive = opted_out(resp.headers.getall("X-Robots-Tag", ()))
            if directive is not None:
                # decided on the headers: the body is never downloaded
                return Attempt(None, "opted_out", f"X-Robots-Tag: {directive} (the host opts out of AI use; "
                               "--ignore-opt-out fetches it anyway)", status=200, host=host)
        return dataclasses.replace(await _read_body(resp, settings), host=host)


# X-Robots-Tag directives that opt an image out of machine-learning use
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai", "none"})


def opted_out(values: Any) -> str | None:
    """Return the opting-out directive among ``X-Robots-Tag`` header values, or None.

    Directives may name a crawler (``googlebot: noai``): those aimed at another crawler
    than gbifxdl are ignored.
    """
    for value in values:
        agent = ""
        for part in str(value).split(","):
            part = part.strip().lower()
            if ":" in part:
                head, _, rest = part.partition(":")
                if head.strip() not in ("unavailable_after",) and " " not in head.strip():
                    agent, part = head.strip(), rest.strip()
            if agent and agent not in ("gbifxdl", "*"):
                continue
            for word in part.split():
                if word in OPT_OUT_DIRECTIVES:
                    return word
    return None


_NETLOC = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


def host_of(url: str) -> str:
    """Return the host (with port when given) of ``url``, lower-case ("" when it has none).

    A regular expression: ``urlsplit`` did the same at ten times the cost, on every URL.
    """
    m = _NETLOC.match(url)
    return m.group(1).lower().rsplit("@", 1)[-1] if m else ""


async def _read_body(resp: aiohttp.ClientResponse, settings: FetchSettings) -> Attempt:
    limit = settings.max_bytes
    declared = resp.content_length
    if declared is not None and declared > limit:
        return Attempt(None, "too_large", f"{declared} bytes declared, over the limit of {limit} (max_bytes)", status=200)
    # the chunks as they arrive, never joined here: whoever needs the body whole joins it
    # (in a worker), the writers write the chunks as they are
    chunks: list[bytes] = []
    size = 0
    while True:
        # readchunk hands over each piece as received; readany would join them (a copy)
        chunk, chunk_end = await resp.content.readchunk()
        if not chunk:
            if chunk_end:  # the end of an HTTP chunk (chunked encoding), not of the body
                continue
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return Attempt(None, "too_large", f"body over the limit of {limit} bytes (max_bytes)", status=200)
    if not size:
        return Attempt(None, "empty", "the server answered 200 with an empty body", status=200)
    return Attempt(chunks, "ok", status=200)


def _status_failure(resp: aiohttp.ClientResponse, host: str | None = None) -> Attempt:
    status = resp.status
    reason = f"HTTP {status} {resp.reason or ''}".strip()
    if status in (429, 503):
        kind = "http_429" if status == 429 else "http_5xx"
        return Attempt(None, kind, reason, status=status, transient=True, throttle=True,
                       retry_after=parse_retry_after(resp.headers.get("Retry-After")), host=host)
    if status in (403, 404, 410):
        return Attempt(None, f"http_{status}", reason, status=status, host=host)
    if status >= 500:
        return Attempt(None, "http_5xx", reason, status=status, transient=True, host=host)
    return Attempt(None, "http_4xx", reason, status=status, transient=status == 408, host=host)


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
