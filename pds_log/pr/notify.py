"""Post-receive notifications: tell PVs a new PR head exists, so they can run an epoch now.

Webhooks are listed in ``<bare repo>/pds-notify.yaml`` (outside git history: it may hold CI
tokens):

    webhooks:
      - url: https://api.github.com/repos/ORG/pv1/dispatches
        headers: {Authorization: "Bearer ..."}      # optional
        body: {event_type: pds-pr-push}              # optional; default: {repo, ref, old, new}
      - url: http://127.0.0.1:8080/hook

Each webhook gets one POST with a short timeout. A failure is reported on the pusher's
terminal and otherwise ignored: notification is an optimisation (PVs also run on schedule),
never a reason to fail a push.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from pds_log.core import yamldoc
from pds_log.core.errors import FormatError

CONFIG = "pds-notify.yaml"
TIMEOUT = 3.0


def load_webhooks(repo_path: str | os.PathLike) -> list[dict]:
    """The webhooks of pds-notify.yaml ([] without one); FormatError (a ValueError) if malformed."""
    path = Path(repo_path) / CONFIG
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise FormatError(f"{path}: {exc.strerror or exc}") from None
    return parse_webhooks(data, str(path))


def parse_webhooks(data: bytes, path: str) -> list[dict]:
    """The webhooks of pds-notify.yaml's bytes, each with a string url; FormatError naming `path`."""
    doc = yamldoc.load(data, path) or {}
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: must be a mapping")
    hooks = doc.get("webhooks") or []
    if not isinstance(hooks, list):
        raise FormatError(f"{path}: webhooks must be a list")
    out = []
    for i, hook in enumerate(hooks):
        hook = hook if isinstance(hook, dict) else {"url": hook}
        if not isinstance(hook.get("url"), str) or not hook["url"]:
            raise FormatError(f"{path}: webhooks[{i}]: url must be a string")
        headers = hook.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in headers.items()):
            raise FormatError(f"{path}: webhooks[{i}]: headers must map names to strings")
        out.append(hook)
    return out


def notify_all(repo_path: str | os.PathLike, updates) -> list[str]:
    """POST each update to each webhook; returns one line per attempt (never raises)."""
    try:
        hooks = load_webhooks(repo_path)
    except ValueError as exc:
        return [f"pds notify: {exc}"]
    lines = []
    for update in updates:
        payload = {"repo": os.path.basename(os.path.abspath(repo_path)), "ref": update.ref,
                   "old": update.old, "new": update.new}
        for hook in hooks:
            url = hook.get("url", "")
            body = hook.get("body") or payload
            try:
                response = requests.post(url, data=json.dumps(body), timeout=TIMEOUT,
                                         headers={"Content-Type": "application/json", **(hook.get("headers") or {})})
                lines.append(f"pds notify: {url}: HTTP {response.status_code}")
            except Exception as exc:  # noqa: BLE001 - never fail the push for a notification
                lines.append(f"pds notify: {url}: failed ({type(exc).__name__}); the push is unaffected")
    return lines
