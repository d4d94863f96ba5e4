"""One HTTP attempt at one image: timeouts, a size limit, redirects, and a classified outcome."""

from __future__ import annotations

import asyncio
import email.utils
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp

from gbifxdl.fetch.settings import FetchSettings

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


def make_session(settings: FetchSettings) -> aiohttp.ClientSession:
    """Return the one HTTP client of a fetch: shared connections, per-read timeouts."""
    connector = aiohttp.TCPConnector(
        limit=settings.connections, limit_per_host=0, ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout,
                                    sock_read=settings.read_timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"User-Agent": settings.user_agent},
        auto_decompress=True, raise_for_status=False,
        # bodies are read whole as they arrive: a buffer big enough for a typical image
        # spares pausing and resuming the socket (a syscall each) several times per body
        read_bufsize=1 << 20,
    )


async def attempt(session: aiohttp.ClientSession, url: str, settings: FetchSettings) -> Attempt:
    """Return the outcome of one GET of ``url``, following redirects by hand."""
    try:
        return await _within(settings.total_timeout, _get(session, url, settings))
    except aiohttp.ServerTimeoutError as exc:
        return Attempt(None, "timeout", f"timed out: {_short(exc)}", transient=True)
    except asyncio.TimeoutError:
        return Attempt(None, "timeout", f"no complete answer within {settings.total_timeout:g} s", transient=True)
    except aiohttp.InvalidURL as exc:
        return Attempt(None, "bad_redirect", f"invalid URL: {exc}")
    except aiohttp.ClientPayloadError as exc:
        return Attempt(None, "connection", f"body cut short: {_short(exc)}", transient=True)
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(None, "connection", f"{type(exc).__name__}: {_short(exc)}", transient=True)


async def _within(seconds: float, coro: Any) -> Any:
    """Await ``coro`` with a deadline (asyncio.TimeoutError past it)."""
    if sys.version_info >= (3, 11):
        # asyncio.timeout runs it in this task; wait_for (before 3.12) made a task per attempt
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, seconds)


async def _get(session: aiohttp.ClientSession, url: str, settings: FetchSettings) -> Attempt:
    seen = {url}
    current = url
    for _ in range(settings.max_redirects + 1):
        if not current[:8].lower().startswith(("http://", "https://")):
            return Attempt(None, "bad_redirect", f"will not follow a redirect to {current!r} (http and https only)")
        async with session.get(current, allow_redirects=False) as resp:
            status = resp.status
            if status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                if not location:
                    return Attempt(None, "bad_redirect", f"HTTP {status} without a Location", status=status)
                nxt = urljoin(current, location)
                if nxt in seen:
                    return Attempt(None, "redirect_loop", f"redirect loop back to {nxt}", status=status)
                seen.add(nxt)
                current = nxt
                continue
            if status != 200:
                return _status_failure(resp)
            return await _read_body(resp, settings)
    return Attempt(None, "redirect_loop", f"more than {settings.max_redirects} redirects (max_redirects)", status=status)


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


def _status_failure(resp: aiohttp.ClientResponse) -> Attempt:
    status = resp.status
    reason = f"HTTP {status} {resp.reason or ''}".strip()
    if status in (429, 503):
        kind = "http_429" if status == 429 else "http_5xx"
        return Attempt(None, kind, reason, status=status, transient=True, throttle=True,
                       retry_after=parse_retry_after(resp.headers.get("Retry-After")))
    if status in (403, 404, 410):
        return Attempt(None, f"http_{status}", reason, status=status)
    if status >= 500:
        return Attempt(None, "http_5xx", reason, status=status, transient=True)
    return Attempt(None, "http_4xx", reason, status=status, transient=status == 408)


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
