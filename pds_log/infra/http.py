"""Fetching static PDS files from mirrors: a total deadline, retries, size limits, redirects.

A mirror is an http(s) base URL, or a local directory (a path or ``file://`` URL: offline
copies, the demo). Everything fetched is verified by the caller against signatures and hashes,
so a mirror is never trusted; this module only makes fetching one file robust and bounded
(failing over between mirrors is the caller's: the peer keeps every file of one answer from
one mirror):

* one file gets at most `deadline` seconds (default 30 s; ``PDS_FETCH_DEADLINE`` overrides it),
  whatever the server does: connecting, TLS, sending the request, the status line and headers,
  the body, every retry and every redirect all come out of that one budget. It is enforced at
  the socket: before each send and each recv the socket timeout is set to the time left (at
  most the per-operation read timeout), so a server dripping one byte at a time, or one that
  accepts and never answers, is cut off at the deadline, not after it;
* a socket operation that waits longer than the read timeout (10 s) with no data, connection
  errors, HTTP 5xx and 429 are retried `retries` times with exponential backoff, within the
  deadline; any other status (404, 403...) is an answer and is not retried;
* redirects are followed by hand, at most `max_redirects`, and only to http(s) URLs: a mirror
  cannot send the peer to ``file://`` or any other scheme;
* a response larger than `max_bytes` (or the caller's smaller per-file limit) is refused as
  soon as its Content-Length, or the bytes received so far, say so; compression is not
  requested, so the limit is on what crosses the network.

Built on the standard `http.client` (not requests/urllib3) because the deadline must reach
every recv, including those that read the status line and headers, and http.client reads
through a file object this module supplies. A Fetcher keeps one idle keep-alive connection per
host; it is not thread-safe. Not bounded by the deadline: the system resolver's DNS lookup.
No HTTP proxy is used (``HTTP_PROXY`` is ignored).

Conditional GET: `Fetcher.fetch(..., etag=, last_modified=)` sends ``If-None-Match`` /
``If-Modified-Since`` and returns a `Fetched` whose `data` is None when the server answered
304 Not Modified (for the one mutable file a peer reads often, ``latest.note``). A
Last-Modified less than `LAST_MODIFIED_MARGIN` seconds older than the server's Date is not
returned as a validator: with a one-second clock a file replaced within that second would
keep looking unmodified.

Errors are `FetchError`: one line naming the URL and the cause (and the HTTP status if any).
"""

from __future__ import annotations

import http.client
import io
import math
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlparse

from pds_log.core.errors import PdsError

DEFAULT_TIMEOUT = (3.0, 10.0)  # connect, read (longest wait for one socket operation)
DEFAULT_DEADLINE = 30.0  # seconds for one whole file (attempts and redirects included)
DEADLINE_ENV = "PDS_FETCH_DEADLINE"
MAX_DEADLINE = 3600.0
MAX_BYTES = 16 << 20
RETRIES = 2
BACKOFF = 0.2
MAX_REDIRECTS = 5
CHUNK = 65536
USER_AGENT = "pds-log"
_REDIRECTS = (301, 302, 303, 307, 308)
LAST_MODIFIED_MARGIN = 2  # seconds (see the module docstring)
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,200}")
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


@dataclass(frozen=True)
class Fetched:
    """One file's answer: its bytes (None: 304, not modified since the validators given), and
    the validators to send next time (None when the server gave none usable)."""

    data: bytes | None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.data is None


def deadline_from_env() -> float:
    """The per-file deadline: ``PDS_FETCH_DEADLINE`` (seconds) if set, else DEFAULT_DEADLINE."""
    text = os.environ.get(DEADLINE_ENV, "").strip()
    if not text:
        return DEFAULT_DEADLINE
    try:
        value = float(text) if len(text) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_DEADLINE):  # also false for NaN
        raise PdsError(f"{DEADLINE_ENV}={text[:40]!r}: must be a number of seconds in (0, {MAX_DEADLINE:g}]")
    return value


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
    deadline: float = field(default_factory=deadline_from_env)
    max_bytes: int = MAX_BYTES
    retries: int = RETRIES
    backoff: float = BACKOFF
    max_redirects: int = MAX_REDIRECTS
    requests_made: int = 0
    bytes_received: int = 0
    _idle: dict[tuple[str, str, int], http.client.HTTPConnection] = field(default_factory=dict, repr=False)
    _tls: ssl.SSLContext | None = field(default=None, repr=False)

    def get(self, base: str, path: str, *, max_bytes: int | None = None) -> bytes:
        """GET base/path (or read it from a local mirror directory)."""
        data = self.fetch(base, path, max_bytes=max_bytes).data
        assert data is not None  # no validators sent: never 304
        return data

    def fetch(self, base: str, path: str, *, max_bytes: int | None = None, etag: str | None = None,
              last_modified: str | None = None) -> Fetched:
        """GET base/path, conditionally when given validators (a local directory is always read)."""
        limit = min(max_bytes or self.max_bytes, self.max_bytes)
        url = join(base, path)
        if is_local(base):
            return Fetched(self._read_file(url, limit))
        conditions = {k: v for k, v in (("If-None-Match", etag), ("If-Modified-Since", last_modified)) if v}
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https"):
            raise FetchError(url, f"unsupported URL scheme {parsed.scheme!r}")
        ends = time.monotonic() + self.deadline
        last: FetchError | None = None
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                pause = self.backoff * (2 ** (attempt - 1))
                if time.monotonic() + pause >= ends:
                    break
                time.sleep(pause)
            attempts += 1
            try:
                return self._get_once(url, limit, ends, conditions)
            except _Retry as retry:
                last = retry.error
                if retry.out_of_time:
                    break
        assert last is not None
        raise FetchError(url, f"{last.cause}, after {attempts} attempts" if attempts > 1 else last.cause,
                         last.status)

    def close(self) -> None:
        """Close the idle keep-alive connections."""
        for conn in self._idle.values():
            conn.close()
        self._idle.clear()

    # ------------------------------------------------------------------ internals
    def _get_once(self, original: str, limit: int, ends: float, conditions: dict[str, str]) -> Fetched:
        url = original
        for _ in range(self.max_redirects + 1):
            self.requests_made += 1
            status, location, data, validators = self._exchange(url, limit, ends, conditions)
            if status == 304 and conditions:
                return Fetched(None, *validators)
            if status in _REDIRECTS:
                if not location:
                    raise FetchError(url, f"HTTP {status} redirect without a Location", status)
                try:
                    target = urljoin(url, location)
                    scheme = urlparse(target).scheme
                except ValueError:
                    raise FetchError(url, f"HTTP {status} redirect to an invalid URL {location[:200]!r}",
                                     status) from None
                if scheme not in ("http", "https"):
                    raise FetchError(original, f"refused redirect to a non-http(s) URL {target[:200]!r}", status)
                url = target
                continue
            if status >= 500 or status in _RETRIED:
                raise _Retry(FetchError(url, f"server error (HTTP {status})", status))
            if status == 404:
                raise FetchError(url, "not found (HTTP 404)", 404)
            if status != 200:
                raise FetchError(url, f"HTTP {status}", status)
            self.bytes_received += len(data)
            return Fetched(data, *validators)
        raise FetchError(original, f"more than {self.max_redirects} redirects")

    def _exchange(self, url: str, limit: int, ends: float, conditions: dict[str, str]
                  ) -> tuple[int, str | None, bytes, tuple[str | None, str | None]]:
        """One GET of `url`: (status, Location, body, (ETag, Last-Modified)); the body is read
        only for a 200."""
        https, host, key, target = _request_target(url)
        conn = self._idle.pop(key, None)
        response: http.client.HTTPResponse | None = None
        reused = conn is not None
        connected = reused
        try:
            while True:
                if conn is None:
                    conn = self._connect(https, host, key[2], ends)
                    connected = True
                _deadline_socket(conn).ends = ends
                try:
                    conn.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "*/*", **conditions})
                    response = conn.getresponse()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not reused:
                        raise
                    # the server closed the idle keep-alive connection: one fresh connection, at once
                    conn.close()
                    conn, reused, connected = None, False, False
            return self._answer(url, key, conn, response, limit)
        except FetchError:
            raise
        except _DeadlineExceeded:
            _close(conn, response)
            raise _Retry(FetchError(url, f"not complete within the {self.deadline:g} s deadline"),
                         out_of_time=True) from None
        except TimeoutError:
            _close(conn, response)
            waited = f"no data for {self.timeout[1]:g} s" if connected else f"connecting for {self.timeout[0]:g} s"
            raise _Retry(FetchError(url, f"timed out ({waited})")) from None
        except http.client.IncompleteRead as exc:
            _close(conn, response)
            raise _Retry(FetchError(url, f"connection broken while reading ({len(exc.partial)} bytes "
                                         f"of the body, then the connection closed)")) from None
        except ssl.SSLCertVerificationError as exc:  # an answer, not a transient failure: not retried
            _close(conn, response)
            raise FetchError(url, f"TLS certificate not accepted ({exc.verify_message or _short(exc)})") from None
        except OSError as exc:
            _close(conn, response)
            phase = "connection failed" if not connected else "connection broken"
            raise _Retry(FetchError(url, f"{phase} ({_short(exc)})")) from None
        except (http.client.HTTPException, ValueError) as exc:  # a malformed status line, headers or chunking
            _close(conn, response)
            raise FetchError(url, f"malformed HTTP response ({type(exc).__name__}: {_short(exc)})") from None

    def _answer(self, url: str, key: tuple[str, str, int], conn: http.client.HTTPConnection,
                response: http.client.HTTPResponse, limit: int
                ) -> tuple[int, str | None, bytes, tuple[str | None, str | None]]:
        """_exchange once the response headers are in: the body of a 200, within `limit`; the
        connection goes back to the idle pool when the response ended cleanly."""
        status = response.status
        validators = _validators(response)
        if status == 304:
            response.read()  # no body
            if response.will_close:
                _close(conn, response)
            else:
                self._idle[key] = conn
            return status, None, b"", validators
        if status != 200:
            location = response.getheader("Location")
            _close(conn, response)
            return status, location, b"", validators
        declared = response.length  # http.client's parse of Content-Length (None: absent or invalid)
        if declared is not None and declared > limit:
            _close(conn, response)
            raise FetchError(url, f"response of {declared} bytes is larger than the limit of {limit} bytes")
        data = bytearray()
        while chunk := response.read(CHUNK):
            data += chunk
            if len(data) > limit:
                _close(conn, response)
                raise FetchError(url, f"response larger than the limit of {limit} bytes")
        if response.will_close:
            _close(conn, response)
        else:
            self._idle[key] = conn  # the body was read to its end: the connection can serve the next GET
        return status, None, bytes(data), validators

    def _connect(self, https: bool, host: str, port: int, ends: float) -> http.client.HTTPConnection:
        """A connection to host:port (TLS for https) whose socket enforces the deadline `ends`."""
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded()
        cap = min(self.timeout[0], remaining)
        try:
            sock = socket.create_connection((host, port), timeout=cap)
        except TimeoutError:
            if time.monotonic() >= ends:
                raise _DeadlineExceeded() from None
            raise
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if https:
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                # CPython bounds the whole handshake by the socket timeout, not each record
                sock.settimeout(max(min(self.timeout[0], ends - time.monotonic()), 0.001))
                try:
                    sock = self._tls.wrap_socket(sock, server_hostname=host)
                except TimeoutError:
                    if time.monotonic() >= ends:
                        raise _DeadlineExceeded() from None
                    raise
        except BaseException:
            sock.close()
            raise
        conn = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(host, port)
        conn.sock = _DeadlineSocket(sock, self.timeout[1], ends)
        conn.auto_open = 0  # http.client must never reconnect by itself: its socket would have no deadline
        return conn

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
    """A failed attempt worth another; `out_of_time`: the deadline is spent, so no other."""

    def __init__(self, error: FetchError, out_of_time: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.out_of_time = out_of_time


class _DeadlineExceeded(Exception):
    """The file's deadline passed during a socket operation (not an OSError: never retried)."""


def _deadline_socket(conn: http.client.HTTPConnection) -> "_DeadlineSocket":
    """The deadline socket `_connect` gave `conn` (http.client types it as a plain socket)."""
    sock: object = conn.sock
    if not isinstance(sock, _DeadlineSocket):
        raise http.client.NotConnected("connection without its deadline socket")
    return sock


class _DeadlineSocket:
    """A connected socket (TCP or TLS) for http.client whose every send and recv must end by
    `ends` (time.monotonic()): each operation first sets the socket timeout to the time left,
    capped at `read_timeout`. A timeout raised with no time left is _DeadlineExceeded."""

    def __init__(self, sock: socket.socket, read_timeout: float, ends: float) -> None:
        self.sock = sock
        self.read_timeout = read_timeout
        self.ends = ends

    def timed(self, operation, *args):
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded()
        self.sock.settimeout(min(self.read_timeout, remaining))
        try:
            return operation(*args)
        except TimeoutError:
            if time.monotonic() >= self.ends:
                raise _DeadlineExceeded() from None
            raise

    def sendall(self, data: bytes) -> None:
        self.timed(self.sock.sendall, data)  # CPython bounds a whole sendall by the timeout

    def makefile(self, mode: str = "rb", *args, **kwargs) -> io.BufferedReader:
        # the socket's own unbuffered reader keeps the file descriptor open after
        # HTTPConnection.close() hands the response over (http.client relies on that)
        return io.BufferedReader(_DeadlineReader(self, self.sock.makefile("rb", buffering=0)))

    def close(self) -> None:
        self.sock.close()


class _DeadlineReader(io.RawIOBase):
    """The raw reader under http.client's response: every recv goes through the deadline."""

    def __init__(self, owner: _DeadlineSocket, raw: io.RawIOBase) -> None:
        self.owner = owner
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int | None:
        return self.owner.timed(self.raw.readinto, buffer)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _request_target(url: str) -> tuple[bool, str, tuple[str, str, int], str]:
    """(HTTPS?, host, connection pool key, request target) of `url`."""
    parsed = urlparse(url)
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        raise FetchError(url, "invalid port in URL") from None
    if not host:
        raise FetchError(url, "no host in URL")
    https = parsed.scheme == "https"
    key = (parsed.scheme, host, port or (443 if https else 80))
    target = quote(parsed.path or "/", safe="/%:@!$&'()*+,;=~") + (
        "?" + quote(parsed.query, safe="/%:@!$&'()*+,;=~?") if parsed.query else "")
    return https, host, key, target


def _validators(response: http.client.HTTPResponse) -> tuple[str | None, str | None]:
    """(ETag, Last-Modified) worth sending back; a Last-Modified too close to the server's Date
    is dropped (see the module docstring), as is any header too long to be honest."""
    etag = response.getheader("ETag")
    modified = response.getheader("Last-Modified")
    if modified is not None:
        from email.utils import parsedate_to_datetime  # loaded by http.client already

        try:
            date = response.getheader("Date")
            age = (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds() if date else 0
        except (TypeError, ValueError, OverflowError):
            age = 0
        if age < LAST_MODIFIED_MARGIN:
            modified = None
    return _header_value(etag), _header_value(modified)


def _header_value(value: str | None) -> str | None:
    """`value` if it can be sent back as a request header (printable ASCII, bounded), else None."""
    return value if value is not None and _HEADER_VALUE.fullmatch(value) else None


def _close(conn: http.client.HTTPConnection | None, response: http.client.HTTPResponse | None) -> None:
    """Close a connection that will not be reused, and its response (which holds the socket open)."""
    if response is not None:
        response.close()
    if conn is not None:
        conn.close()


def _short(exc: Exception) -> str:
    """The innermost cause of an exception, on one short line."""
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
    return (text or type(inner).__name__)[:160]
