"""Fetching static PDS files from mirrors: timeouts, retries, size limits, redirects.

A mirror is an http(s) base URL, or a local directory (a path or ``file://`` URL: offline
copies, the demo). Everything fetched is verified by the caller against signatures and hashes,
so a mirror is never trusted; this module only makes fetching one file robust and bounded
(failing over between mirrors is the caller's: the peer keeps every file of one answer from
one mirror):

* each request has a connect and a read timeout, and the whole response must arrive within
  `deadline` seconds (a server dripping one byte per read timeout cannot hold a peer forever);
* connection errors, timeouts, HTTP 5xx and 429 are retried `retries` times with exponential
  backoff; any other status (404, 403...) is an answer and is not retried;
* redirects are followed by hand, at most `max_redirects`, and only to http(s) URLs: a mirror
  cannot send the peer to ``file://`` or any other scheme;
* a response larger than `max_bytes` (or the caller's smaller per-file limit) is refused as
  soon as its Content-Length, or the bytes received so far, say so; compression is not
  requested, so the limit is on what crosses the network.

Errors are `FetchError`: one line naming the URL and the cause (and the HTTP status if any).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import requests

from pds_log.core.errors import PdsError

DEFAULT_TIMEOUT = (3.0, 10.0)  # connect, read (per socket operation)
DEFAULT_DEADLINE = 30.0  # seconds for a whole response
MAX_BYTES = 16 << 20
RETRIES = 2
BACKOFF = 0.2
MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRIED = {429}


class FetchError(PdsError):
    """A file could not be fetched (the message names the URL and the cause)."""

    def __init__(self, url: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause
        self.status = status

    @property
    def not_found(self) -> bool:
        return self.status == 404


def is_local(base: str) -> bool:
    """True for a mirror that is a local directory (a path or a file:// URL)."""
    return urlparse(base).scheme in ("", "file")


def check_mirror_url(base: str) -> str:
    """`base` if it is an http(s) URL with a host or a local directory; else ValueError."""
    parsed = urlparse(base)
    if parsed.scheme in ("http", "https"):
        if not parsed.hostname:
            raise ValueError(f"{base!r} has no host")
        if parsed.query or parsed.fragment:
            raise ValueError(f"{base!r}: a mirror base URL cannot have a query or fragment")
        return base
    if parsed.scheme == "file" or parsed.scheme == "":
        return base
    raise ValueError(f"{base!r}: unsupported scheme {parsed.scheme!r} (http, https or a local directory)")


def join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


@dataclass
class Fetcher:
    """An HTTP client for mirrors; counts requests and bytes (the benchmarks read them)."""

    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    deadline: float = DEFAULT_DEADLINE
    max_bytes: int = MAX_BYTES
    retries: int = RETRIES
    backoff: float = BACKOFF
    max_redirects: int = MAX_REDIRECTS
    session: requests.Session = field(default_factory=requests.Session)
    requests_made: int = 0
    bytes_received: int = 0

    def get(self, base: str, path: str, *, max_bytes: int | None = None) -> bytes:
        """GET base/path (or read it from a local mirror directory)."""
        limit = min(max_bytes or self.max_bytes, self.max_bytes)
        url = join(base, path)
        if is_local(base):
            return self._read_file(url, limit)
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https"):
            raise FetchError(url, f"unsupported URL scheme {parsed.scheme!r}")
        last: FetchError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                return self._get_once(url, limit)
            except _Retry as retry:
                last = retry.error
        assert last is not None
        raise FetchError(url, f"{last.cause}, after {self.retries + 1} attempts" if self.retries else last.cause,
                         last.status)

    # ------------------------------------------------------------------ internals
    def _get_once(self, original: str, limit: int) -> bytes:
        url = original
        start = time.monotonic()
        for _ in range(self.max_redirects + 1):
            self.requests_made += 1
            try:
                response = self.session.get(url, timeout=self.timeout, stream=True, allow_redirects=False,
                                            headers={"Accept-Encoding": "identity"})
            except requests.Timeout:
                raise _Retry(FetchError(url, "timed out")) from None
            except requests.ConnectionError as exc:
                raise _Retry(FetchError(url, f"connection failed ({_short(exc)})")) from None
            except requests.RequestException as exc:
                raise FetchError(url, f"request failed ({_short(exc)})") from None
            with response:
                status = response.status_code
                if status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(url, f"HTTP {status} redirect without a Location", status)
                    target = urljoin(url, location)
                    if urlparse(target).scheme not in ("http", "https"):
                        raise FetchError(original, f"refused redirect to a non-http(s) URL {target[:200]!r}", status)
                    url = target
                    continue
                if status >= 500 or status in _RETRIED:
                    raise _Retry(FetchError(url, f"server error (HTTP {status})", status))
                if status == 404:
                    raise FetchError(url, "not found (HTTP 404)", 404)
                if status != 200:
                    raise FetchError(url, f"HTTP {status}", status)
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise FetchError(url, f"response of {declared} bytes is larger than the limit of {limit} bytes")
                data = bytearray()
                try:
                    for chunk in response.iter_content(65536):
                        data += chunk
                        if len(data) > limit:
                            raise FetchError(url, f"response larger than the limit of {limit} bytes")
                        if time.monotonic() - start > self.deadline:
                            raise _Retry(FetchError(url, f"response not complete after {self.deadline:g} s"))
                except requests.RequestException as exc:
                    raise _Retry(FetchError(url, f"connection broken while reading ({_short(exc)})")) from None
                self.bytes_received += len(data)
                return bytes(data)
        raise FetchError(original, f"more than {self.max_redirects} redirects")

    def _read_file(self, url: str, limit: int) -> bytes:
        parsed = urlparse(url)
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(url)
        self.requests_made += 1
        try:
            size = path.stat().st_size
            if size > limit:
                raise FetchError(url, f"file of {size} bytes is larger than the limit of {limit} bytes")
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise FetchError(url, "not found", 404) from None
        except IsADirectoryError:
            raise FetchError(url, "is a directory") from None
        except OSError as exc:
            raise FetchError(url, exc.strerror or str(exc)) from None
        self.bytes_received += len(data)
        return data


class _Retry(Exception):
    def __init__(self, error: FetchError) -> None:
        super().__init__(str(error))
        self.error = error


def _short(exc: Exception) -> str:
    """The innermost cause of a requests exception, on one short line."""
    inner: BaseException = exc
    seen = {id(inner)}
    while True:
        nxt = getattr(inner, "reason", None) if isinstance(getattr(inner, "reason", None), BaseException) else None
        nxt = nxt or inner.__cause__ or inner.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        inner = nxt
    text = re.sub(r"^\[Errno -?\d+\] ", "", str(inner).replace("\n", " "))
    text = re.sub(r"^<[^>]*>: ", "", text)
    text = re.sub(r"^Failed to establish a new connection: ", "", text)
    return (text or type(inner).__name__)[:160]
