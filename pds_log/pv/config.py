"""A PV's configuration file (pv.yaml) and its public descriptor (pv.json in the log repo).

    version: 1
    origin: pv1.example               # the STR origin = the note key name
    pr:
      url: /srv/pr.git                # or ssh://git@host/pr
      branch: main
      root: <commit id>               # the PR's root commit, pinned at init (trust on first use)
    keys:
      note: keys/note.key             # Ed25519 note signer (PRIVATE+KEY+...), mode 0600
      ssh: keys/ssh_ed25519           # SSH key: signs the PV's commits to its PR area
      known_hosts: keys/known_hosts   # pinned SSH host keys of the PR and mirrors (ssh URLs);
                                      #   unset: the running user's ~/.ssh/known_hosts
    log_repo: log.git                 # bare git repo, one commit per epoch
    state_dir: state                  # lock, PR mirror, caches, pending epoch
    verifiers:                        # name -> runner config (see verifier_runners)
      reproducible: {runner: reproducible}
    acceptance: reproducible          # formula over verifier names: & | ( )
    epoch_interval: 600               # seconds; peers should allow a few intervals of age
    jobs: 0                           # plugins verified at once (worker processes); 0 = one per core
    mirrors: []                       # git URLs the log repo is pushed to after each epoch
    report_to_pr: true                # push STRs and failure reports to pvs/<origin> on the PR
    published:                        # optional; named in pv.json so auditors can find the log
      log: [https://pv1.example/log.git]      # URLs anyone can `git clone` the log repo from
      mirrors: [https://mirror.example/pv1/]  # base URLs of static mirrors of `pds pv publish`
    str_version: 1                    # 1: STR v1 (prev chain); 2: STR v2, a checkpoint of the epoch log
                                      #   (formats.md); a log never goes back from 2 to 1
    witnesses:                        # optional, STR v2 only: C2SP tlog-witnesses that cosign each epoch
      - name: witness.example/w1      # the witness's cosigner name
        vkey: witness.example/w1+20324abe+BC...   # its cosignature/v1 verifier key
        url: https://witness.example/w1           # submission prefix (POST <url>/add-checkpoint)
    witness_timeout: 5                # seconds per witness request; a witness that is down never blocks an epoch
    log_layout: 3                     # the log repo's layout (core/log_layout.py; default 3): an older log
                                      #   is migrated in its next epoch; 1 or 2 keeps a log of that layout
                                      #   as it is (a log never goes back)

Relative paths are relative to the directory of pv.yaml.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pds_log.core.checkpoint import CosignatureVerifier
from pds_log.core.errors import FormatError, PdsError
from pds_log.core.formula import Formula
from pds_log.core.log_layout import KNOWN_LAYOUTS, LATEST_LAYOUT
from pds_log.core.note import NoteSigner, validate_key_name
from pds_log.core.records import PvDescriptor, policy_hash, policy_obj
from pds_log.core.yamldoc import parse_mapping

_VERIFIER_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclass
class PvConfig:
    path: Path
    origin: str
    pr_url: str
    pr_branch: str
    pr_root: str | None
    note_key: Path
    ssh_key: Path | None
    log_repo: Path
    state_dir: Path
    verifiers: dict[str, dict[str, Any]]
    acceptance: str
    epoch_interval: int = 600
    jobs: int = 0
    mirrors: list[str] = field(default_factory=list)
    report_to_pr: bool = True
    known_hosts: Path | None = None
    published_log: list[str] = field(default_factory=list)
    published_mirrors: list[str] = field(default_factory=list)
    str_version: int = 1
    witnesses: list["WitnessSetting"] = field(default_factory=list)
    witness_timeout: float = 5.0
    log_layout: int = LATEST_LAYOUT

    @property
    def base(self) -> Path:
        return self.path.parent

    def signer(self) -> NoteSigner:
        try:
            text = self.note_key.read_text(encoding="utf-8")
        except OSError as exc:
            raise PdsError(f"{self.note_key}: cannot read the PV note key ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise PdsError(f"{self.note_key}: the PV note key is not UTF-8 text") from None
        signer = NoteSigner.from_string(text)
        if signer.name != self.origin:
            raise PdsError(f"{self.note_key}: key is for {signer.name!r}, but origin is {self.origin!r}")
        return signer

    def acceptance_formula(self) -> Formula:
        """The acceptance expression: a monotone formula whose atoms are verifier names."""
        formula = Formula.parse(self.acceptance, known_pvs=list(self.verifiers))
        dotted = [str(a) for a in formula.atoms if a.prop is not None]
        if dotted:
            raise FormatError(f"acceptance {self.acceptance!r}: atoms must be verifier names, not {dotted[0]!r}")
        return formula

    def policy_obj(self) -> dict[str, Any]:
        """What the STR `policy` line hashes: the acceptance formula and the verifier configs."""
        return policy_obj(self.acceptance, self.verifiers)

    def policy_hash(self) -> str:
        return policy_hash(self.acceptance, self.verifiers)

    def descriptor(self) -> dict[str, Any]:
        """pv.json: what auditors and peers need to know about this PV (no secrets)."""
        return self.descriptor_record().to_obj()

    def descriptor_record(self) -> PvDescriptor:
        return PvDescriptor.build(
            origin=self.origin, vkey=str(self.signer().verifier()), pr_url=self.pr_url, pr_branch=self.pr_branch,
            pr_root=self.pr_root, acceptance=self.acceptance, verifiers=self.verifiers,
            epoch_interval=self.epoch_interval, log_urls=tuple(self.published_log),
            mirrors=tuple(self.published_mirrors))


@dataclass(frozen=True)
class WitnessSetting:
    """One entry of pv.yaml `witnesses:`."""

    name: str
    verifier: CosignatureVerifier
    url: str


MAX_WITNESSES = 64
MAX_WITNESS_TIMEOUT = 120


def _log_layout(doc: dict, where: str) -> int:
    value = doc.get("log_layout", LATEST_LAYOUT)
    if isinstance(value, bool) or value not in KNOWN_LAYOUTS:
        raise FormatError(f"{where}: 'log_layout' must be one of {', '.join(map(str, KNOWN_LAYOUTS))}, "
                          f"not {str(value)[:20]!r}")
    return int(value)


def _str_version(doc: dict, where: str) -> int:
    value = doc.get("str_version", 1)
    if isinstance(value, bool) or value not in (1, 2):
        raise FormatError(f"{where}: 'str_version' must be 1 or 2, not {str(value)[:20]!r}")
    return int(value)


def _witnesses(doc: dict, where: str, str_version: int) -> tuple[list[WitnessSetting], float]:
    """`witnesses: [{name, vkey, url}]` and `witness_timeout` (seconds)."""
    entries = _optional(doc, "witnesses", list, [], where)
    timeout = doc.get("witness_timeout", 5)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_WITNESS_TIMEOUT:
        raise FormatError(f"{where}: 'witness_timeout' must be a number of seconds in (0, {MAX_WITNESS_TIMEOUT}]")
    if entries and str_version != 2:
        raise FormatError(f"{where}: 'witnesses' need 'str_version: 2' (witnesses cosign STR v2 checkpoints)")
    if len(entries) > MAX_WITNESSES:
        raise FormatError(f"{where}: more than {MAX_WITNESSES} witnesses")
    out: list[WitnessSetting] = []
    for i, entry in enumerate(entries):
        place = f"{where}: witnesses[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "vkey", "url"}:
            raise FormatError(f"{place}: expected exactly 'name', 'vkey' and 'url'")
        name, vkey, url = entry["name"], entry["vkey"], entry["url"]
        if not all(isinstance(v, str) for v in (name, vkey, url)):
            raise FormatError(f"{place}: 'name', 'vkey' and 'url' must be strings")
        try:
            verifier = CosignatureVerifier.from_string(vkey)
        except FormatError as exc:
            raise FormatError(f"{place}: vkey: {exc}") from None
        if verifier.name != name:
            raise FormatError(f"{place}: the vkey is named {verifier.name!r}, not {name!r}")
        if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise FormatError(f"{place}: url {url[:80]!r} is not an http(s) URL")
        if any(w.name == name for w in out):
            raise FormatError(f"{place}: witness {name} listed twice")
        out.append(WitnessSetting(name, verifier, url))
    return out, float(timeout)


def _require(doc: dict, key: str, kind: type, where: str):
    if key not in doc:
        raise FormatError(f"{where}: missing '{key}'")
    value = doc[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FormatError(f"{where}: '{key}' must be a {kind.__name__}")
    return value


def _optional(doc: dict, key: str, kind: type, default: Any, where: str) -> Any:
    """doc[key] if present (and not null), of type `kind`, else `default`."""
    if doc.get(key) is None:
        return default
    return _require(doc, key, kind, where)


def _count(doc: dict, key: str, default: int, where: str) -> int:
    """A whole number >= 0 (as before, a decimal string such as "600" is read as its number)."""
    value = doc.get(key)
    if value is None:
        value = default
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii() and len(value) < 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FormatError(f"{where}: '{key}' must be a whole number >= 0")
    return value


def _published(doc: dict, where: str) -> tuple[list[str], list[str]]:
    """`published: {log: [URL...], mirrors: [URL...]}`: public URLs, written into pv.json."""
    published = _optional(doc, "published", dict, {}, where)
    unknown = set(published) - {"log", "mirrors"}
    if unknown:
        raise FormatError(f"{where}: published: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                          f"(expected log, mirrors)")
    out = []
    for key in ("log", "mirrors"):
        urls = _optional(published, key, list, [], f"{where}: published")
        for url in urls:
            if not isinstance(url, str) or "://" not in url or any(c.isspace() for c in url):
                raise FormatError(f"{where}: published.{key}: {str(url)[:80]!r} is not a URL")
        out.append(list(urls))
    return out[0], out[1]


def load_config(path: str | os.PathLike) -> PvConfig:
    path = Path(path).resolve()
    try:
        data = path.read_bytes()  # decoded by yamldoc: strict UTF-8, an error naming the file
    except OSError as exc:
        raise PdsError(f"{path}: {exc.strerror}") from None
    return parse_config(data, path)


def parse_config(data: str | bytes, path: Path) -> PvConfig:
    """pv.yaml's content as read from `path` (an absolute path: relative paths resolve against
    its directory); every problem is a FormatError naming the file and the field."""
    where = str(path)
    doc = parse_mapping(data, where, {"version", "origin", "pr", "keys", "log_repo", "state_dir", "verifiers",
                                      "acceptance", "epoch_interval", "jobs", "mirrors", "report_to_pr",
                                      "published", "str_version", "witnesses", "witness_timeout",
                                      "log_layout"})
    version = doc.get("version")
    if version != 1 or isinstance(version, bool):
        raise FormatError(f"{where}: 'version' must be 1")
    origin = validate_key_name(_require(doc, "origin", str, where))
    pr = _require(doc, "pr", dict, where)
    keys = _require(doc, "keys", dict, where)
    base = path.parent

    def resolve(p: str, what: str) -> Path:
        try:
            return (base / p).resolve() if not os.path.isabs(p) else Path(p)
        except (OSError, ValueError) as exc:  # e.g. an embedded NUL byte
            raise FormatError(f"{where}: {what}: unusable path {p[:80]!r} ({exc})") from None

    verifiers = _require(doc, "verifiers", dict, where)
    _check_verifiers(verifiers, where)
    pr_url = _require(pr, "url", str, f"{where}: pr")
    if "://" not in pr_url and not pr_url.startswith("/") and ":" not in pr_url:
        pr_url = str(resolve(pr_url, "pr.url"))
    pr_root = pr.get("root")
    if pr_root is not None and not isinstance(pr_root, str):
        raise FormatError(f"{where}: pr: 'root' must be a commit id")
    mirrors = _optional(doc, "mirrors", list, [], where)
    if not all(isinstance(m, str) and m for m in mirrors):
        raise FormatError(f"{where}: 'mirrors' must be a list of git URLs")
    ssh_key = _optional(keys, "ssh", str, None, f"{where}: keys")
    known_hosts = _optional(keys, "known_hosts", str, None, f"{where}: keys")
    published_log, published_mirrors = _published(doc, where)
    str_version = _str_version(doc, where)
    witnesses, witness_timeout = _witnesses(doc, where, str_version)
    config = PvConfig(
        path=path,
        origin=origin,
        pr_url=pr_url,
        pr_branch=_optional(pr, "branch", str, "main", f"{where}: pr"),
        pr_root=pr_root,
        note_key=resolve(_require(keys, "note", str, f"{where}: keys"), "keys.note"),
        ssh_key=resolve(ssh_key, "keys.ssh") if ssh_key else None,
        log_repo=resolve(_optional(doc, "log_repo", str, "log.git", where), "log_repo"),
        state_dir=resolve(_optional(doc, "state_dir", str, "state", where), "state_dir"),
        verifiers=verifiers,
        acceptance=_require(doc, "acceptance", str, where),
        epoch_interval=_count(doc, "epoch_interval", 600, where),
        jobs=_count(doc, "jobs", 0, where),
        mirrors=list(mirrors),
        report_to_pr=_optional(doc, "report_to_pr", bool, True, where),
        known_hosts=resolve(known_hosts, "keys.known_hosts") if known_hosts else None,
        published_log=published_log,
        published_mirrors=published_mirrors,
        str_version=str_version,
        witnesses=witnesses,
        witness_timeout=witness_timeout,
        log_layout=_log_layout(doc, where),
    )
    try:
        config.acceptance_formula()
    except FormatError as exc:
        raise FormatError(f"{where}: acceptance: {exc}") from None
    try:  # the STR policy line hashes the verifier configs: they must be plain JSON data
        config.policy_hash()
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{where}: verifiers: not plain data ({type(exc).__name__}: {str(exc)[:80]})") from None
    return config


def _check_verifiers(verifiers: dict[Any, Any], where: str) -> None:
    """pv.yaml's verifiers: at least one, each an identifier naming a mapping with a runner."""
    if not verifiers:
        raise FormatError(f"{where}: 'verifiers' must name at least one verifier")
    for name, conf in verifiers.items():
        if not isinstance(name, str) or not name or set(name) - _VERIFIER_NAME_CHARS or name[0].isdigit():
            raise FormatError(f"{where}: verifier name {name!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(conf, dict) or "runner" not in conf:
            raise FormatError(f"{where}: verifiers.{name} must be a mapping with a 'runner'")


def dump_config(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
