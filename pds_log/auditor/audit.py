"""`pds audit`: recompute a PV's whole history from a plain clone of its log repo.

For every epoch commit (oldest first) the auditor checks:

* shape: one parent per commit (a linear history), message ``epoch <E>``;
* STR: signed by the PV key (given, or the one in the first epoch's pv.json, which must never
  change), epoch numbers 1, 2, 3..., chain (prev hash, time), ``latest.note`` equal to
  ``epochs/.../<E>.note``, and every earlier STR file still byte-identical;
* tree: the committed bindings (canonical, at their right paths) rebuild to the STR's root and
  size; the STR's policy is the hash of pv.json's acceptance config;
* changes: the bindings added, changed and removed by the commit are exactly the epoch
  record's added / updated / removed lists (nothing changes silently), every accepted binding
  has a results record whose verifier verdicts satisfy the acceptance expression and whose
  passing verifiers are the binding's properties, every rejection has a results record with
  its reason, the tiles of the changed paths are present, and every accepted object is in
  bytecode/ and hashes to its name;
* with a PR clone: every accepted binding's manifest and objects are the files of
  ``plugins/<name>/`` at the binding's source commit, that commit was signed by a key the PR
  policy allowed for that name, and the STRs the PV pushed to its PR area are the log's STRs;
* with a state file: the history continues the one audited before (no rewrite).

Findings name the epoch and the check. The exit status is non-zero on any finding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pygit2

from pds_log.core import log_layout as layout
from pds_log.core.binding import Binding, canonical_json
from pds_log.core.errors import FormatError, PdsError, VerificationError
from pds_log.core.formula import Formula
from pds_log.core.names import name_key
from pds_log.core.note import NoteVerifier
from pds_log.core.signed_root import SignedTreeRoot, check_chain, open_str
from pds_log.core.tiles import tiles_on_paths
from pds_log.core.tree import PrefixTree
from pds_log.infra.files import atomic_write_bytes
from pds_log.infra.gittree import read_path


@dataclass
class Finding:
    epoch: int | None
    check: str
    message: str

    def __str__(self) -> str:
        where = f"epoch {self.epoch}" if self.epoch is not None else "log"
        return f"{where}: {self.check}: {self.message}"


@dataclass
class AuditReport:
    epochs: int = 0
    plugins: int = 0
    findings: list[Finding] = field(default_factory=list)
    head: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_obj(self) -> dict:
        return {"ok": self.ok, "epochs": self.epochs, "plugins": self.plugins, "head": self.head,
                "seconds": round(self.seconds, 3),
                "findings": [{"epoch": f.epoch, "check": f.check, "message": f.message} for f in self.findings]}


def open_log(path: str | Path, ref: str | None = None) -> tuple[pygit2.Repository, pygit2.Commit]:
    try:
        repo = pygit2.Repository(str(path))
    except pygit2.GitError:
        raise PdsError(f"{path}: not a git repository") from None
    candidates = [ref] if ref else ["refs/heads/main", "refs/remotes/origin/main", "HEAD"]
    for name in candidates:
        try:
            obj = repo.revparse_single(name)
        except (KeyError, pygit2.GitError):
            continue
        commit = obj.peel(pygit2.Commit)
        return repo, commit
    raise PdsError(f"{path}: no branch main (tried {', '.join(candidates)})")


def first_parent_chain(head: pygit2.Commit) -> list[pygit2.Commit]:
    chain = []
    commit = head
    while True:
        chain.append(commit)
        if not commit.parents:
            break
        commit = commit.parents[0]
    chain.reverse()
    return chain


class Auditor:
    def __init__(self, log_path: str | Path, *, vkey: str | None = None, pr_path: str | Path | None = None,
                 ref: str | None = None, state_path: str | Path | None = None) -> None:
        self.repo, self.head = open_log(log_path, ref)
        self.vkey = vkey
        self.pr = pygit2.Repository(str(pr_path)) if pr_path else None
        self.state_path = Path(state_path) if state_path else None
        self.report = AuditReport(head=str(self.head.id))

    def find(self, epoch: int | None, check: str, message: str) -> None:
        self.report.findings.append(Finding(epoch, check, message))

    def read(self, commit: pygit2.Commit, path: str) -> bytes | None:
        return read_path(self.repo, commit.tree, path)

    # ------------------------------------------------------------------ main loop
    def run(self) -> AuditReport:
        import time

        t0 = time.perf_counter()
        chain = first_parent_chain(self.head)
        verifier = self._verifier(chain[0])
        if verifier is None:
            return self.report
        values: dict[str, bytes] = {}
        tree = PrefixTree()
        prev: SignedTreeRoot | None = None
        str_bytes: dict[int, bytes] = {}
        for index, commit in enumerate(chain, start=1):
            self.report.epochs = index
            signed = self._check_str(commit, index, verifier, prev, str_bytes)
            if signed is None:
                break  # without a valid STR nothing else of this epoch (or later) can be trusted
            epoch = signed.head.epoch
            parent = commit.parents[0] if commit.parents else None
            added, modified, deleted = self._binding_changes(parent, commit, epoch)
            for name, binding in {**added, **modified}.items():
                values[name] = binding.value()
                tree.set(name_key(name), values[name])
            for name in deleted:
                values.pop(name, None)
                tree.delete(name_key(name))
            if tree.root() != signed.head.root:
                self.find(epoch, "tree", f"bindings rebuild to root {tree.root().hex()[:16]}..., "
                                         f"the STR signed {signed.head.root.hex()[:16]}...")
            if len(tree) != signed.head.size:
                self.find(epoch, "tree", f"{len(tree)} bindings, the STR says size {signed.head.size}")
            self._check_policy(commit, signed, epoch)
            self._check_record(commit, epoch, signed, added, modified, deleted)
            self._check_tiles(commit, epoch, tree, [name_key(n) for n in (*added, *modified, *deleted)])
            if self.pr is not None:
                for binding in (*added.values(), *modified.values()):
                    self._check_against_pr(epoch, binding, signed.head.time)
            prev = signed
        self.report.plugins = len(values)
        if self.pr is not None and prev is not None:
            self._check_pr_area(prev.head.origin, str_bytes, verifier)
        self._check_state(chain, str_bytes)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    # ------------------------------------------------------------------ checks
    def _verifier(self, first: pygit2.Commit) -> NoteVerifier | None:
        data = self.read(first, layout.PV_DESCRIPTOR)
        try:
            desc = json.loads(data) if data else None
            logged = NoteVerifier.from_string(desc["vkey"]) if desc else None
        except (ValueError, KeyError, TypeError, FormatError) as exc:
            self.find(1, "descriptor", f"pv.json unreadable: {exc}")
            logged = None
        if self.vkey:
            expected = NoteVerifier.from_string(self.vkey)
            if logged is not None and logged != expected:
                self.find(1, "descriptor", f"pv.json names key {logged}, not the expected {expected}")
            return expected
        if logged is None:
            self.find(1, "descriptor", "no pv.json with the PV key in the first epoch (pass --vkey)")
        return logged

    def _check_str(self, commit, index, verifier, prev, str_bytes) -> SignedTreeRoot | None:
        if len(commit.parents) > 1:
            self.find(index, "history", f"commit {commit.id} is a merge; the log must be linear")
        if commit.message.split("\n", 1)[0] != f"epoch {index}":
            self.find(index, "history", f"commit {str(commit.id)[:12]} is not 'epoch {index}' "
                                        f"(message: {commit.message.splitlines()[0][:60]!r}): an epoch was dropped or added")
        note = self.read(commit, layout.str_path(index))
        latest = self.read(commit, layout.LATEST_STR)
        if note is None:
            self.find(index, "str", f"{layout.str_path(index)} missing (epoch numbering broken)")
            return None
        if latest != note:
            self.find(index, "str", f"{layout.LATEST_STR} differs from {layout.str_path(index)}")
        try:
            signed = open_str(note, verifier)
        except (FormatError, VerificationError) as exc:
            self.find(index, "signature", f"STR does not verify with {verifier.name}+{verifier.key_id.hex()}: {exc}")
            return None
        if signed.head.epoch != index:
            self.find(index, "epoch", f"STR says epoch {signed.head.epoch}, expected {index}")
        try:
            check_chain(prev, signed)
        except VerificationError as exc:
            self.find(index, "chain", str(exc))
        for earlier, data in str_bytes.items():
            kept = self.read(commit, layout.str_path(earlier))
            if kept != data:
                self.find(index, "history", f"the STR of epoch {earlier} was changed or removed "
                                            f"(two STRs for epoch {earlier})")
                str_bytes[earlier] = kept if kept is not None else data
        str_bytes[index] = note
        return signed

    def _binding_changes(self, parent, commit, epoch):
        added: dict[str, Binding] = {}
        modified: dict[str, Binding] = {}
        deleted: list[str] = []
        if parent is None:
            from pds_log.infra.gittree import walk_blobs

            entries = [(p, "A") for p, _ in walk_blobs(self.repo, commit.tree) if p.startswith("bindings/")]
        else:
            entries = []
            for delta in self.repo.diff(parent.tree, commit.tree).deltas:
                path = delta.new_file.path or delta.old_file.path
                if not path.startswith("bindings/"):
                    continue
                status = delta.status
                code = {pygit2.enums.DeltaStatus.ADDED: "A", pygit2.enums.DeltaStatus.MODIFIED: "M",
                        pygit2.enums.DeltaStatus.DELETED: "D"}.get(status, "?")
                entries.append((path, code))
        for path, code in entries:
            try:
                name = layout.name_from_record_path(path)
            except FormatError as exc:
                self.find(epoch, "layout", str(exc))
                continue
            if code == "D":
                deleted.append(name)
                continue
            data = self.read(commit, path)
            try:
                binding = Binding.decode(data, path)
            except FormatError as exc:
                self.find(epoch, "binding", str(exc))
                continue
            if binding.name != name:
                self.find(epoch, "binding", f"{path} holds the binding of {binding.name}")
                continue
            (added if code == "A" else modified)[name] = binding
        return added, modified, deleted

    def _check_policy(self, commit, signed, epoch) -> None:
        data = self.read(commit, layout.PV_DESCRIPTOR)
        try:
            desc = json.loads(data)
            policy = hashlib.sha256(canonical_json({"acceptance": desc["acceptance"],
                                                    "verifiers": desc["verifiers"]})).hexdigest()
        except (TypeError, ValueError, KeyError):
            self.find(epoch, "descriptor", "pv.json missing or malformed")
            return
        if policy != signed.head.policy:
            self.find(epoch, "policy", f"STR policy {signed.head.policy[:16]}... is not the hash of pv.json's "
                                       f"acceptance config ({policy[:16]}...)")
        self._acceptance = (desc["acceptance"], list(desc["verifiers"]))

    def _result(self, commit, name) -> dict | None:
        data = self.read(commit, layout.result_path(name))
        try:
            return json.loads(data) if data else None
        except ValueError:
            return None

    def _check_record(self, commit, epoch, signed, added, modified, deleted) -> None:
        data = self.read(commit, layout.epoch_record_path(epoch))
        if data is None:
            self.find(epoch, "record", f"{layout.epoch_record_path(epoch)} missing")
            return
        try:
            record = layout.EpochRecord.decode(data)
        except FormatError as exc:
            self.find(epoch, "record", str(exc))
            return
        if record.root != signed.head.root.hex() or record.pr_to != signed.head.pr:
            self.find(epoch, "record", "epoch record root/PR differ from the STR")
        for label, actual, claimed in (("added", set(added), set(record.added)),
                                       ("updated", set(modified), set(record.updated)),
                                       ("removed", set(deleted), {r["name"] for r in record.removed})):
            silent = actual - claimed
            if silent:
                self.find(epoch, "silent change", f"{label} without a record: {', '.join(sorted(silent))}")
            missing = claimed - actual
            if missing:
                self.find(epoch, "record", f"record says {label} but the tree did not change: "
                                           f"{', '.join(sorted(missing))}")
        acceptance, verifier_names = getattr(self, "_acceptance", (None, []))
        formula = Formula.parse(acceptance, known_pvs=verifier_names) if acceptance else None
        for name, binding in {**added, **modified}.items():
            result = self._result(commit, name)
            if result is None or result.get("status") != "accepted":
                self.find(epoch, "results", f"{name} entered the tree without an 'accepted' results record")
                continue
            if result.get("binding_value") != binding.value().hex():
                self.find(epoch, "results", f"{name}: results record is for another binding")
            verdicts = {v: r.get("status") == "pass" for v, r in (result.get("verifiers") or {}).items()}
            if formula is not None and not formula.evaluate(verdicts):
                self.find(epoch, "results", f"{name}: verifier results do not satisfy '{acceptance}'")
            if sorted(v for v, ok in verdicts.items() if ok) != list(binding.properties):
                self.find(epoch, "results", f"{name}: properties {list(binding.properties)} are not the passing "
                                            f"verifiers {sorted(v for v, ok in verdicts.items() if ok)}")
            for path, digest in ((binding.manifest_path, binding.manifest_sha256), *binding.pluglets.items()):
                blob = self.read(commit, layout.blob_path("bytecode", digest))
                if blob is None or hashlib.sha256(blob).hexdigest() != digest:
                    self.find(epoch, "bytecode", f"{name}: {path} ({digest[:12]}...) missing from bytecode/")
        for entry in record.rejected:
            result = self._result(commit, entry["name"]) if entry["name"] and "/" not in entry["name"] else None
            if result is not None and result.get("status") != "rejected":
                self.find(epoch, "results", f"{entry['name']}: rejected in the record, '{result.get('status')}' in results")

    def _check_tiles(self, commit, epoch, tree, keys) -> None:
        for tile_hash, tile in tiles_on_paths(tree, keys).items():
            data = self.read(commit, layout.tile_path(tile.level, tile_hash))
            if data != tile.encode():
                self.find(epoch, "tiles", f"tile {tile.level}/{tile_hash.hex()[:16]}... missing or wrong")

    # ------------------------------------------------------------------ PR checks
    def _check_against_pr(self, epoch: int, binding: Binding, when: int) -> None:
        try:
            commit = self.pr[binding.source]
        except (KeyError, ValueError):
            self.find(epoch, "pr", f"{binding.name}: source commit {binding.source[:12]} is not in the PR")
            return
        base = f"plugins/{binding.name}/"
        for path, digest in ((binding.manifest_path, binding.manifest_sha256), *binding.pluglets.items()):
            data = read_path(self.pr, commit.tree, base + path)
            if data is None:
                self.find(epoch, "pr", f"{binding.name}: {path} is not in the PR at {binding.source[:12]}")
            elif hashlib.sha256(data).hexdigest() != digest:
                self.find(epoch, "bytecode", f"{binding.name}: {path} in the log ({digest[:12]}...) differs from "
                                             f"the PR's at {binding.source[:12]} "
                                             f"({hashlib.sha256(data).hexdigest()[:12]}...)")
        try:
            from pds_log.infra import commit_check
        except ImportError:  # pragma: no cover
            return
        verdict = commit_check.check_commit(self.pr, commit, when=when)  # as the PV did, at its epoch time
        if not verdict.ok:
            self.find(epoch, "signer", f"{binding.name}: source commit {binding.source[:12]} fails the PR policy: "
                                       f"{'; '.join(verdict.reasons)}")

    def _check_pr_area(self, origin: str, str_bytes: dict[int, bytes], verifier: NoteVerifier) -> None:
        ref = None
        for name in (f"refs/heads/pvs/{origin}", f"refs/remotes/origin/pvs/{origin}"):
            if name in self.pr.references:
                ref = self.pr.references[name]
                break
        if ref is None:
            return
        area = self.pr[ref.target]
        prefix = f"pvs/{origin}/str/"
        try:
            entry = area.tree[prefix.rstrip("/")]
        except KeyError:
            return
        for item in self.pr[entry.id]:
            if not item.name.endswith(".note"):
                continue
            try:
                epoch = int(item.name[:-5])
            except ValueError:
                continue
            data = self.pr[item.id].data
            if epoch in str_bytes and data != str_bytes[epoch]:
                try:
                    open_str(data, verifier)
                    self.find(epoch, "equivocation", f"the STR the PV pushed to the PR for epoch {epoch} differs "
                                                     f"from the log's; both are validly signed")
                except (FormatError, VerificationError):
                    self.find(epoch, "pr area", f"the PR area holds an invalid STR for epoch {epoch}")

    def _check_state(self, chain: list[pygit2.Commit], str_bytes: dict[int, bytes]) -> None:
        if self.state_path is None:
            return
        try:
            seen = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            seen = None
        except ValueError:
            self.find(None, "state", f"{self.state_path} unreadable")
            return
        if seen:
            epoch = int(seen["epoch"])
            if epoch > len(chain):
                self.find(epoch, "history", f"the log now ends at epoch {len(chain)}, before the audited epoch {epoch}")
            elif hashlib.sha256(str_bytes.get(epoch, b"")).hexdigest() != seen["str_sha256"] or \
                    str(chain[epoch - 1].id) != seen["commit"]:
                self.find(epoch, "history", "history rewritten: epoch "
                                            f"{epoch} differs from the one audited before")
        if self.report.ok and chain:
            last = len(chain)
            atomic_write_bytes(self.state_path, json.dumps({
                "epoch": last, "commit": str(chain[-1].id),
                "str_sha256": hashlib.sha256(str_bytes[last]).hexdigest()}).encode())


def audit(log_path, **kwargs) -> AuditReport:
    return Auditor(log_path, **kwargs).run()


def iter_lines(report: AuditReport) -> Iterator[str]:
    for finding in report.findings:
        yield str(finding)
