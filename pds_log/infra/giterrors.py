"""What a failed git fetch or push means, and what to do about it.

git (and ssh under it) reports a failure over many lines and ends with the same generic
"Please make sure you have the correct access rights and the repository exists." whatever
went wrong; libgit2 (pygit2.GitError) has its own wording. `explain_git_failure` turns either
into one line: what happened, what to do, and the line of git's output that says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# git's own epilogue, printed after every remote failure: never the telling line
_GENERIC = ("fatal: could not read from remote repository", "please make sure you have the correct access",
            "and the repository exists")


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    advice: str  # formatted with url, host, key_setting, hosts_setting


_RULES = [
    _Rule("host-key-changed", re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|host key for .* has changed|"
                                         r"hostkey.*mismatch", re.I),
          "the host key of {host} is not the one pinned in {hosts_setting}: refused. If the server's key "
          "was really replaced, put its new key there (after checking it out of band); otherwise someone "
          "may be in the middle"),
    _Rule("host-key-unknown", re.compile(r"host key verification failed|no \S+ host key is known|"
                                         r"invalid or unknown remote ssh hostkey|hostkey.*(unknown|not found)", re.I),
          "unknown host key for {host}: no key for it is pinned in {hosts_setting}, so the connection was "
          "refused; add the server's key there (check its fingerprint out of band first)"),
    _Rule("auth", re.compile(r"permission denied \(publickey|permission denied, please try again|"
                             r"failed to authenticate ssh session|authentication required|"
                             r"authentication failed|too many authentication failures|no supported authentication",
                             re.I),
          "the server at {host} refused the SSH key: check {key_setting} and that its admin (for the PR, "
          "the PR admin) added this key's .pub for this user"),
    _Rule("denied", re.compile(r"FATAL: .*DENIED|access denied|not allowed to", re.I),
          "the server at {host} accepted the SSH key but denies this repository or ref to it "
          "(gitolite: no rule for this key, or a misspelled repository name)"),
    _Rule("not-found", re.compile(r"does not appear to be a git repository|repository .*not found|"
                                  r"could not find repository|failed to resolve path|not a git repository|"
                                  r"no such file or directory", re.I),
          "no repository at {url}: check the URL (path, repository name) and that the repository exists"),
    _Rule("no-host", re.compile(r"could not resolve hostname|name or service not known|failed to resolve address",
                                re.I),
          "cannot resolve the host name in {url}: check the URL"),
    _Rule("no-connection", re.compile(r"connection refused|connection timed out|no route to host|"
                                      r"network is unreachable|failed to connect", re.I),
          "cannot connect to {host}: check the host and port in {url} and that the server (sshd) is running"),
    _Rule("non-fast-forward", re.compile(r"non-fast-forward|\(fetch first\)|updates were rejected", re.I),
          "{url} holds commits this copy does not have (another copy signed or pushed there?): "
          "fetch and compare before pushing again; never force"),
    _Rule("hook-refused", re.compile(r"pre-receive hook declined|hook declined|\[remote rejected\]", re.I),
          "the repository's hook at {url} refused the push (its reasons are above)"),
]


def git_failure_kind(output: str) -> str | None:
    """auth | host-key-unknown | host-key-changed | denied | not-found | no-host | no-connection |
    non-fast-forward | hook-refused, or None when the output says nothing we recognise."""
    rule = _match(output)
    return rule.kind if rule else None


def explain_git_failure(output: str | BaseException, url: str, *, action: str = "git",
                        key_setting: str = "the SSH key given", hosts_setting: str = "known_hosts") -> str:
    """One line for a failed `action` ("fetch", "push", ...) on `url`, from git's stderr or a
    pygit2.GitError: what to do, then the line of git's output that shows it."""
    text = str(output)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    telling = [ln for ln in lines if not ln.lower().startswith(_GENERIC) and not set(ln) <= {"@"}]
    rule = _match(text)
    remote_lines = [ln.removeprefix("remote:").strip() for ln in telling if ln.startswith("remote:")]
    if rule is None:
        detail = telling[-1] if telling else (lines[-1] if lines else f"git {action} failed")
        return f"{action} {url} failed: {detail}"
    evidence = next((ln for ln in telling if rule.pattern.search(ln)), telling[-1] if telling else "")
    advice = rule.advice.format(url=url, host=_host(url), key_setting=key_setting, hosts_setting=hosts_setting)
    if rule.kind == "hook-refused" and remote_lines:
        evidence = "; ".join(remote_lines[-5:])
    return f"{action} {url} failed: {advice} (git: {evidence})"


def _match(text: str) -> _Rule | None:
    return next((rule for rule in _RULES if rule.pattern.search(text)), None)


def _host(url: str) -> str:
    """The host (and port) part of an ssh:// or scp-like URL, else the URL itself."""
    m = re.match(r"^[a-z+]+://(?:[^@/]*@)?([^/]+)", url)
    if m:
        return m.group(1)
    m = re.match(r"^(?:[^@/]+@)?([^:/]+):", url)
    return m.group(1) if m else url


CONNECTION_KINDS = frozenset({"auth", "host-key-unknown", "host-key-changed", "denied", "not-found", "no-host",
                              "no-connection"})


def connection_problem(output: str | BaseException, url: str, *, action: str = "git",
                       key_setting: str = "the SSH key given", hosts_setting: str = "known_hosts") -> str | None:
    """`explain_git_failure` when git never got to talk to the repository (SSH key, host key,
    no such repository, no connection); None otherwise, so that a remote's own refusal (a hook's
    reasons, a non-fast-forward) keeps the caller's wording."""
    if git_failure_kind(str(output)) not in CONNECTION_KINDS:
        return None
    return explain_git_failure(output, url, action=action, key_setting=key_setting, hosts_setting=hosts_setting)
