"""Fetching static PDS files from mirrors: timeouts, retries, size limits, failover.

A mirror is an http(s) base URL (or a local directory, for offline tests and file mirrors).
Everything fetched is verified by the caller against signatures and hashes, so a mirror is
never trusted; this module only makes fetching robust and bounded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

DEFAULT_TIMEOUT = (3.0, 10.0)  # connect, read
MAX_BYTES = 16 << 20
RETRIES = 2
BACKOFF = 0.2


class FetchError(Exception):
    """A file could not be fetched from a mirror (the message names the URL and the cause)."""

    def __init__(self, url: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"{url}: {cause}")
        self.url = url
        self.cause = cause
        self.status = status


@dataclass
class Fetcher:
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    max_bytes: int = MAX_BYTES
    retries: int = RETRIES
    session: requests.Session = field(default_factory=requests.Session)
    requests_made: int = 0
    bytes_received: int = 0

    def get(self, base: str, path: str) -> bytes:
        """GET base/path with retries on connection errors and 5xx; 404 is not retried."""
        url = join(base, path)
        parsed = urlparse(url)
        if parsed.scheme in ("", "file"):
            return self._read_file(Path(parsed.path if parsed.scheme else url), url)
        if parsed.scheme not in ("http", "https"):
            raise FetchError(url, f"unsupported URL scheme {parsed.scheme!r}")
        last: FetchError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(BACKOFF * (2 ** (attempt - 1)))
            try:
                self.requests_made += 1
                with self.session.get(url, timeout=self.timeout, stream=True, allow_redirects=True) as response:
                    if urlparse(response.url).scheme not in ("http", "https"):
                        raise FetchError(url, f"redirected to a non-http URL {response.url}")
                    if response.status_code == 404:
                        raise FetchError(url, "not found (HTTP 404)", 404)
                    if response.status_code >= 500:
                        last = FetchError(url, f"server error (HTTP {response.status_code})", response.status_code)
                        continue
                    if response.status_code != 200:
                        raise FetchError(url, f"HTTP {response.status_code}", response.status_code)
                    data = bytearray()
                    for chunk in response.iter_content(65536):
                        data += chunk
                        if len(data) > self.max_bytes:
                            raise FetchError(url, f"response larger than {self.max_bytes} bytes")
                    self.bytes_received += len(data)
                    return bytes(data)
            except FetchError:
                raise
            except requests.Timeout:
                last = FetchError(url, "timed out")
            except requests.ConnectionError as exc:
                last = FetchError(url, f"connection failed ({type(exc).__name__})")
            except requests.RequestException as exc:
                last = FetchError(url, f"request failed ({exc})")
        assert last is not None
        raise last

    def _read_file(self, path: Path, url: str) -> bytes:
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FetchError(url, f"file larger than {self.max_bytes} bytes")
            data = path.read_bytes()
        except FileNotFoundError:
            raise FetchError(url, "not found", 404) from None
        except OSError as exc:
            raise FetchError(url, exc.strerror or str(exc)) from None
        self.requests_made += 1
        self.bytes_received += len(data)
        return data


def join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")
