"""Fuzz tests: every parser of outside input turns any input into a value or a PdsError.

Each target below is one parser fed from a hypothesis strategy that reaches deep: random bytes
and text, random JSON/YAML trees, valid documents with one field replaced by a hostile value
(100k-deep nesting, 5,000-digit ints, lone surrogates, NaN, huge strings, wrong types, YAML
tags and aliases), valid documents with random byte edits, valid notes with mutated lines.
The property is the same for all: the parser returns, or raises an instance of
`pds_log.core.errors.PdsError` (FormatError subclasses ValueError, so "raises ValueError" would
not do: a stray ValueError from a library is exactly the bug being hunted).

The default run is small (PDS_FUZZ_EXAMPLES, default 60 examples per parser; generating the
inputs, not parsing them, is most of the time);
`benchmarks/fuzz.py --cases N` runs a bigger campaign over the same targets and prints a table.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pds_log.cli.tree import parse_bindings
from pds_log.core import equivocation, jsondoc, names, note, yamldoc
from pds_log.core.binding import Binding
from pds_log.core.commit_signature import signer_key
from pds_log.core.errors import PdsError
from pds_log.core.formula import Formula
from pds_log.core.log_layout import EpochRecord, binding_path, name_from_record_path, result_path
from pds_log.core.manifest import parse_plugin_manifest, parse_pquic, parse_xbgp
from pds_log.core.policy import Policy
from pds_log.core.proof import Proof, make_proof, verify_proof
from pds_log.core.recipe import BuildRecipe
from pds_log.core.signed_root import TreeHead, open_str, sign_str
from pds_log.core.tiles import TILE_MAGIC, Tile, all_tiles, prove_from_tiles
from pds_log.core.tree import PrefixTree
from pds_log.peer.bundle import check_bundle, parse_bundle
from pds_log.peer.trust import PeerState, parse_trust
from pds_log.pr.notify import parse_webhooks
from pds_log.pv.config import parse_config

EXAMPLES = int(os.environ.get("PDS_FUZZ_EXAMPLES", "60"))


# ------------------------------------------------------------------ rendering documents with hostile lexemes
class Raw(str):
    """Text inserted verbatim into a rendered document (a lexeme no well-behaved encoder writes)."""


def render_json(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{render_json(k if isinstance(k, Raw) else str(k))}:{render_json(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render_json(v) for v in value) + "]"
    if isinstance(value, float):
        return json.dumps(value, allow_nan=True)
    return json.dumps(value, ensure_ascii=False)


def render_yaml(value: Any) -> str:
    """Flow-style YAML (JSON-like, so hostile lexemes can sit anywhere)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render_yaml(k)}: {render_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_yaml(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ".nan" if value != value else (".inf" if value == float("inf") else
                                              "-.inf" if value == float("-inf") else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "!!binary " + (base64.b64encode(value).decode() or '""')
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return json.dumps(value)  # JSON string escapes are YAML double-quoted escapes


DEEP = 100_000
JSON_HOSTILE = [Raw(x) for x in (
    "9" * 5000, "-" + "9" * 5000, "9" * 41, "1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1" + "0" * 400 + ".5",
    "[" * DEEP, "[" * DEEP + "]" * DEEP, '{"a":' * 5000 + "1" + "}" * 5000, "[" * 65 + "]" * 65,
    '"\\ud800"', '"\\udfff\\ud800x"', '"\\u0000"', '"' + "x" * 200_000 + '"', '{"a":1,"a":2}',
    "1e-999999", "true", "false", "null", '""', "[]", "{}", "-0", "0.0", "01", "1.", ".5", "'a'", "[1,]", "{,}",
    '"\\u2014 "', '"a\\nb"', '"\\r\\n"',
)]
YAML_HOSTILE = [Raw(x) for x in (
    "9" * 5000, "-" + "9" * 5000, "0x" + "f" * 5000, "0o" + "7" * 5000, "0b" + "1" * 300, "9" * 40,
    ".nan", ".inf", "-.inf", "1e400", "!!binary aGk=", "!!set {a: null}", "2020-01-01", "2020-01-01T00:00:00Z",
    "99999-01-01", "!!timestamp 2020-13-45", "!!timestamp 99999-01-01", "&a [1]", "*a", "[&a [1], *a]",
    '"\\ud800"', '"\\x00"', '"\\uffff"', "!!python/object/apply:os.system ['true']", "!!python/name:os.system",
    "[" * 10_000, "[" * 2000 + "]" * 2000, "{" * 70 + "}" * 70, "{? [1]: 2}", "!!int 12", "!!int x", "!!float x",
    "!!bool maybe", "~", "yes", "no", "on", "190:20:30", "1_000", "!!str", "'" + "x" * 100_000 + "'", "{1: 2}",
    "{null: 1}", "{[1, 2]: 3}", "!!map [1]", "!!seq {a: 1}", "!!omap [a: 1]", "!!pairs [a: 1]", "<<: {a: 1}",
    "{<<: [1]}", "'\\ud800'", "!<tag:x> 1", "%YAML 1.1", "--- a\n--- b", "a: b: c", "- a\n b", "|\n x", ">-\n  x",
    "\t", "@", "`", '"a\\\nb"',
)]
HOSTILE_BYTES = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\r", b"\n", b"\xe2\x80\x94 ",
                 b"\xef\xbb\xbf", b"\x80" * 3, b"{", b"[", b'"', b"\\", b"\t", b"#", b"&", b"*", b"!", b"%", b":"]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indexes) inside a JSON-like value, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.extend(_paths(child, prefix + (i,)))
    return out


def _replace(value: Any, path: tuple, new: Any, rename: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if key != head:
                out[key] = child
            elif rest or not rename or not isinstance(new, (str, int)) or isinstance(new, bool):
                out[key] = _replace(child, rest, new, rename)
            else:  # the key itself replaced (a hostile lexeme key is a Raw, which is a str)
                out[new] = child
        return out
    out_list = list(value)
    out_list[head] = _replace(out_list[head], rest, new, rename)
    return out_list


json_leaf = (st.none() | st.booleans() | st.integers() | st.integers(-(2**130), 2**130)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
             | st.sampled_from(["", "a.b", "x.plugin", "a.o", "0" * 64, "pv1.example", "main", "1"]))
json_tree = st.recursive(json_leaf, lambda children: st.lists(children, max_size=5)
                         | st.dictionaries(st.text(max_size=12), children, max_size=5), max_leaves=8)
yaml_leaf = json_leaf | st.binary(max_size=8) | st.dates()
yaml_tree = st.recursive(yaml_leaf, lambda children: st.lists(children, max_size=5)
                         | st.dictionaries(st.text(max_size=12) | st.integers(), children, max_size=5), max_leaves=8)


def _mutate_bytes(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, pos, length, chunk in ops:
        at = pos % (len(buf) + 1)
        if kind == 0:  # overwrite one byte
            if buf:
                buf[min(at, len(buf) - 1)] = length % 256
        elif kind == 1:
            buf[at:at] = chunk
        elif kind == 2:
            del buf[at:at + length]
        elif kind == 3:
            del buf[at:]
        else:
            buf[at:at] = buf[at:at + length]
    return bytes(buf)


byte_ops = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 300),
                              st.sampled_from(HOSTILE_BYTES) | st.binary(min_size=1, max_size=8)),
                    min_size=1, max_size=4)


def pick(choices: list) -> st.SearchStrategy:
    """sampled_from without its arguments in the strategy's repr (the hostile lexemes are huge)."""
    def chosen(i: int) -> Any:
        return choices[i]
    return st.integers(0, len(choices) - 1).map(chosen)


def documents(valid: list[Any], render: Callable[[Any], str], hostile: list[Raw], tree: st.SearchStrategy,
              extra: st.SearchStrategy | None = None) -> st.SearchStrategy[bytes]:
    """Bytes of: valid documents, each with one value (or key) replaced by a hostile or random value or
    with random byte edits; random trees; hostile lexemes alone; random bytes and text."""

    def with_field(doc: Any) -> st.SearchStrategy[bytes]:
        paths = _paths(doc)
        replacement = pick(hostile) | tree
        return st.builds(lambda p, new, rename: render(_replace(doc, p, new, rename)).encode("utf-8", "surrogatepass"),
                         st.sampled_from(paths), replacement, st.booleans())

    valid_bytes = [render(d).encode("utf-8") for d in valid]
    choices = [
        pick(valid_bytes),
        st.one_of(*[with_field(d) for d in valid]),
        st.one_of(*[with_field(d) for d in valid]),
        st.builds(_mutate_bytes, pick(valid_bytes), byte_ops),
        tree.map(lambda t: render(t).encode("utf-8", "surrogatepass")),
        pick(hostile).map(lambda r: str(r).encode()),
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    ]
    if extra is not None:
        choices.append(extra)
    return st.one_of(*choices)


# ------------------------------------------------------------------ valid material, made for real
SIGNER = note.NoteSigner("pv1.example", hashlib.sha256(b"fuzz pv1").digest())
VERIFIER = SIGNER.verifier()
OTHER_SIGNER = note.NoteSigner("pv2.example", hashlib.sha256(b"fuzz pv2").digest())
NAMES = [f"be.example.p{i}" for i in range(40)]
COMMIT = "c" * 40


def _binding(name: str) -> Binding:
    return Binding.create(name, "x.plugin", hashlib.sha256(name.encode()).hexdigest(),
                          {"a.o": "a" * 64, "sub/b.o": "b" * 64}, COMMIT, ["reproducible", "safety"])


BINDINGS = {n: _binding(n) for n in NAMES}
TREE = PrefixTree.from_items({names.name_key(n): b.value() for n, b in BINDINGS.items()})
ROOT = TREE.root()
PROOFS = [make_proof(TREE, n, 2, BINDINGS.__getitem__) for n in (NAMES[0], NAMES[7], "be.example.absent", "zz.z")]
TILES = dict(all_tiles(TREE))
TILE_BYTES = {h: t.encode() for h, t in TILES.items()}


def _head(epoch: int, root: bytes, time: int = 1_700_000_000) -> TreeHead:
    return TreeHead("pv1.example", epoch, root, bytes(32) if epoch == 1 else hashlib.sha256(b"prev").digest(), time,
                    COMMIT, len(NAMES), "d" * 64)


STR_A = sign_str(_head(2, ROOT), SIGNER)
STR_B = sign_str(_head(2, hashlib.sha256(b"other root").digest()), SIGNER)
STR_1 = sign_str(_head(1, ROOT), SIGNER)
NOTES = [STR_A.note, STR_B.note, STR_1.note, note.sign("hello\nworld\n", [SIGNER, OTHER_SIGNER])]
EVIDENCE = equivocation.detect(STR_A.note, STR_B.note, VERIFIER).to_json()
RECORD = EpochRecord(epoch=2, origin="pv1.example", pr_from="a" * 40, pr_to="b" * 40, time=1_700_000_000,
                     root=ROOT.hex(), size=40, added=NAMES[:3], updated=[NAMES[5]],
                     removed=[{"name": "be.example.gone", "reason": "deleted from the PR"}],
                     rejected=[{"name": "be.example.bad", "reason": "safety: fail"}],
                     commits=[{"id": "b" * 40, "ok": True, "reasons": []}], policy="d" * 64)

TRUST = {"version": 1, "pvs": {"pv1": {"vkey": str(VERIFIER), "mirrors": ["https://pv1.example/pds/", "mirror/pv1"],
                                        "pr": "https://pr.example/pr.git"},
                                "pv2": {"vkey": str(OTHER_SIGNER.verifier()), "mirrors": ["/srv/pv2"]}},
         "require": "pv1 & (pv2 | pv1.termination)", "max_age": 3600, "state": "state/peer.json"}
TRUST_OBJ = parse_trust(yaml.safe_dump(TRUST), "trust.yaml", base=Path("/nonexistent"))
PV_YAML = {"version": 1, "origin": "pv1.example",
           "pr": {"url": "/srv/pr.git", "branch": "main", "root": "e" * 40},
           "keys": {"note": "keys/note.key", "ssh": "keys/ssh_ed25519"}, "log_repo": "log.git", "state_dir": "state",
           "verifiers": {"reproducible": {"runner": "reproducible"}, "safety": {"runner": "safety", "limit": 4096},
                         "external": {"runner": "command", "argv": ["t2", "{object}"], "timeout": 30}},
           "acceptance": "reproducible & (safety | external)", "epoch_interval": 600, "jobs": 0,
           "mirrors": ["/srv/mirror.git"], "report_to_pr": True}


def _ssh_key(seed: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()).public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


POLICY = {"version": 1, "branch": "main", "max_blob_bytes": 1 << 20,
          "admins": [{"name": "alice-admin", "key": _ssh_key(b"admin") + " alice@example"}],
          "developers": [{"name": "alice", "key": _ssh_key(b"alice"), "namespaces": ["be.example.*", "*"],
                          "valid_after": "2026-01-01T00:00:00Z", "valid_before": 1900000000}],
          "revoked": [{"key": _ssh_key(b"old"), "reason": "laptop stolen"}],
          "pvs": [{"origin": "pv1.example", "key": _ssh_key(b"pv1")}]}
NOTIFY = {"webhooks": [{"url": "https://api.example/dispatches", "headers": {"Authorization": "Bearer x"},
                        "body": {"event_type": "pds-pr-push"}}, "http://127.0.0.1:8080/hook"]}
BUNDLE = {"v": 1, "type": "pds-proof-bundle", "name": NAMES[0], "created": 1_700_000_100,
          "bytecode": {"x.plugin": "1" * 64, "a.o": "a" * 64, "sub/b.o": "b" * 64},
          "pvs": {"pv1.example": {"str": STR_A.note.decode(), "proof": PROOFS[0].to_obj()}}}
XBGP = {"jit_all": True, "plugins": {"bgp_decision": {"extra_mem": 4096, "shared_mem": 0,
                                                      "replace": {"0": {"path": "a.o"}}, "pre": {"1": {"path": "sub/b.o"}}}}}
RECIPE = {"compiler": "clang", "version_prefix": "Debian clang version 14.", "flags": ["-O2", "-I", "."]}


# ------------------------------------------------------------------ strategies per input kind
def json_docs(valid: list[Any]) -> st.SearchStrategy[bytes]:
    return documents(valid, render_json, JSON_HOSTILE, json_tree)


def yaml_docs(valid: list[Any]) -> st.SearchStrategy[bytes]:
    block = [yaml.safe_dump(v, sort_keys=False).encode() for v in valid]
    return documents(valid, render_yaml, YAML_HOSTILE, yaml_tree,
                     extra=st.builds(_mutate_bytes, pick(block), byte_ops) | pick(block)
                     | yaml_tree.map(lambda t: yaml.safe_dump(t).encode()))


NOTE_LINES = ["", " ", "\u2014 ", "\u2014 pv1.example", "\u2014 pv1.example AAAA", "\u2014 pv1.example " + "A" * 92,
              "\u2014 pv1.example " + base64.b64encode(VERIFIER.key_id + bytes(64)).decode(), "\u2014 a b c",
              "\u2014  x", "\u2014 pv1.example ====", "x" * 5000, "9" * 5000, "0", "01", "-1", "prev ", "time -1",
              "time " + "9" * 30, "size 1e3", "pr " + "A" * 40, "policy " + "0" * 63, "\u2014\u2014", "pv1.example",
              "pv 1.example", "pv1+example", "\x00", "\t", "\udc80", "\u2028", "\ufeff"]


@st.composite
def note_bytes(draw) -> bytes:
    kind = draw(st.integers(0, 4))
    base = draw(st.sampled_from(NOTES))
    if kind == 0:
        return base
    if kind == 1:
        return _mutate_bytes(base, draw(byte_ops))
    if kind == 2:
        return draw(st.binary(max_size=400))
    lines = base.decode().split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines)))
        new = draw(st.sampled_from(NOTE_LINES) | st.text(max_size=20)
                   | st.builds(lambda s, a, b: s[:a] + s[b:], st.sampled_from(lines), st.integers(0, 80),
                               st.integers(0, 80)))
        op = draw(st.integers(0, 3))
        if op == 0 and i < len(lines):
            lines[i] = new
        elif op == 1:
            lines.insert(i, new)
        elif op == 2 and i < len(lines):
            del lines[i]
        else:
            sig = next((ln for ln in lines if ln.startswith("\u2014")), "\u2014 x AAAAAAA=")
            lines[i:i] = [sig] * draw(st.sampled_from([2, 17, 101, 150]))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def tile_bytes(draw) -> bytes:
    kind = draw(st.integers(0, 3))
    base = draw(st.sampled_from(sorted(TILE_BYTES.values())))
    if kind == 0:
        return _mutate_bytes(base, draw(byte_ops))
    if kind == 1:
        return TILE_MAGIC + draw(st.binary(max_size=300))
    if kind == 2:
        head = TILE_MAGIC + bytes([draw(st.integers(0, 255))]) + draw(st.integers(0, 65535)).to_bytes(2, "big")
        entries = draw(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 3), st.binary(min_size=32, max_size=64)),
                                max_size=12))
        return head + b"".join(bytes([i, k]) + body for i, k, body in entries)
    return draw(st.binary(max_size=100))


TOKENS = ["be.example.x", "be.example.y", "x", "dynamic_memory", "negotiate", "rate_unlimited", "nego", "update_rtt",
          "param", "0x1f", "0x", "0xfffff", "0XAB", "replace", "pre", "post", "extern", "around", "a.o", "sub/b.o",
          "../a.o", "/a.o", "a.c", "frag.plugin", "x.plugin", "include", "#", "-", "#comment", "a..o", "\u00e9.o", "a\\b.o"]


@st.composite
def pquic_files(draw) -> dict[str, bytes]:
    def text() -> bytes:
        if draw(st.integers(0, 5)) == 0:
            return draw(st.binary(max_size=200))
        lines = []
        if draw(st.booleans()):
            lines.append(" ".join(["be.example.x", *draw(st.lists(st.sampled_from(TOKENS[3:7]), max_size=3))]))
        for _ in range(draw(st.integers(0, 5))):
            tokens = draw(st.lists(st.sampled_from(TOKENS) | st.text(min_size=1, max_size=6), min_size=0, max_size=5))
            lines.append(draw(st.sampled_from([" ", "  ", "\t", " \u00a0"])).join(tokens))
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        return _mutate_bytes(data, draw(byte_ops)) if draw(st.integers(0, 3)) == 0 else data

    files = {"x.plugin": text(), "a.o": b"\x7fELF" + bytes(60)}
    if draw(st.booleans()):
        files["frag.plugin"] = text()
    if draw(st.booleans()):
        files[draw(st.sampled_from(["sub/c.plugin", "y.plugin", "manifest.json"]))] = text()
    return files


FORMULA_ATOMS = ["pv1", "pv2", "pv3", "pv1.termination", "pv2.safety", "a", "b"]
FORMULA_TOKENS = FORMULA_ATOMS + ["(", ")", "|", "&", "+", "*", "~", "!", "x", "or", "and", "not", "1", "0", "true",
                                  ")x", "(|", ""]


@st.composite
def formula_text(draw) -> str:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.text(max_size=60))
    if kind == 1:
        return draw(st.text(alphabet="abpv123._ &|()~!+-^01xTRUEandornt\t\n", max_size=60))
    if kind == 4:  # token soup: where boolean.py's own assertions fire (``a + ( | b)x``)
        return " ".join(draw(st.lists(st.sampled_from(FORMULA_TOKENS), max_size=12)))
    expr = draw(st.recursive(st.sampled_from(FORMULA_ATOMS), lambda c: st.builds(
        lambda a, op, b, paren: f"({a} {op} {b})" if paren else f"{a} {op} {b}", c,
        st.sampled_from(["&", "|", "and", "or", "+", "*", "&&", "~", "| ~"]), c, st.booleans()), max_leaves=12))
    if kind == 3:
        cut = draw(st.integers(0, len(expr)))
        expr = expr[:cut] + draw(st.sampled_from(["", "(", ")", " | ", "x", "( | b)x", "\udc80", "1", "~", "."])) + expr[cut:]
    return draw(st.sampled_from(["", "(" * 300, "(" * 1000]))+ expr if draw(st.integers(0, 9)) == 0 else expr


def signatures() -> st.SearchStrategy[bytes]:
    armor = b"-----BEGIN SSH SIGNATURE-----\n"
    end = b"\n-----END SSH SIGNATURE-----\n"
    blob = st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"SSHSIG\x00\x00\x00\x01" + b)
    return st.one_of(blob.map(lambda b: armor + base64.encodebytes(b) + end), st.binary(max_size=200).map(lambda b: armor + b),
                     st.binary(max_size=100))


# ------------------------------------------------------------------ the parsers under test
def _fetch_with(mutated: bytes, victim: bytes) -> Callable[[int, bytes], bytes]:
    def fetch(level: int, h: bytes) -> bytes:
        return mutated if h == victim else TILE_BYTES[h]
    return fetch


def run_proof(data: bytes) -> None:
    proof = Proof.from_json(data)
    verify_proof(proof, ROOT, 2)


def run_note(data: bytes) -> None:
    note.parse(data)
    open_str(data, VERIFIER)
    note.open_note(data, [VERIFIER, OTHER_SIGNER.verifier()])


def run_tile(data: bytes) -> None:
    key = names.name_key(NAMES[3])
    victims = [h for h, t in TILES.items()]
    for victim in (ROOT, victims[len(data) % len(victims)]):
        try:
            prove_from_tiles(key, ROOT, _fetch_with(data, victim))
        except PdsError:
            pass
    Tile.decode(data).top_hash()


def run_binding(data: bytes) -> None:
    Binding.decode(data)


def run_binding_obj(data: bytes) -> None:
    Binding.from_obj(jsondoc.loads(data, "binding"))


def run_pquic(files: dict[str, bytes]) -> None:
    try:
        parse_pquic(files, "x.plugin", dir_name="be.example.x")
    finally:
        parse_plugin_manifest(files, "be.example.x")


def run_xbgp(data: bytes) -> None:
    files = {"manifest.json": data, "a.o": b""}
    parse_xbgp(files, "be.example.x")


def run_xbgp_find(data: bytes) -> None:
    parse_plugin_manifest({"manifest.json": data}, "be.example.x")


def run_trust(data: bytes) -> None:
    parse_trust(data, "trust.yaml", base=Path("/nonexistent"))


def run_pv_yaml(data: bytes) -> None:
    config = parse_config(data, Path("/nonexistent/pv/pv.yaml"))
    config.policy_hash()
    config.acceptance_formula()


def run_policy(data: bytes) -> None:
    policy = Policy.parse(data)
    for key in [POLICY["developers"][0]["key"], *(p.key for p in policy.developers + policy.admins)]:
        policy.key_problem(key, 1_800_000_000)
        policy.may_write_plugin(key, NAMES[0], 1_800_000_000)
        policy.is_admin(key)
        policy.pv_origin(key)


def run_notify(data: bytes) -> None:
    parse_webhooks(data, "pds-notify.yaml")


_EMPTY_DIR = tempfile.mkdtemp(prefix="pds-fuzz-bytecode-")


def run_bundle(data: bytes) -> None:
    parse_bundle(data)
    check_bundle(data, TRUST_OBJ, _EMPTY_DIR, now=1_700_000_200, state=None, update_state=False)


_STATE_FILE = Path(_EMPTY_DIR) / "peer-state.json"


def run_peer_state(data: bytes) -> None:
    _STATE_FILE.write_bytes(data)
    state = PeerState.load(_STATE_FILE)
    for origin in list(state.pvs) + ["pv1.example"]:
        state.last(origin)


def run_formula(text: str) -> None:
    formula = Formula.parse(text, known_pvs=["pv1", "pv2", "pv3", "a", "b"] if len(text) % 2 else None)
    formula.evaluate_with({"pv1": True, "pv2": len(text) % 3 == 0}, {"pv1": ["termination"]})


def run_evidence(data: bytes) -> None:
    equivocation.is_evidence(data)
    equivocation.check(data, VERIFIER)


def run_record(data: bytes) -> None:
    record = EpochRecord.decode(data)
    record.encode()


def run_bindings_jsonl(data: bytes) -> None:
    parse_bindings(data, "bindings.jsonl")


def run_recipe(data: bytes) -> None:
    obj = jsondoc.loads(data, "recipe")
    BuildRecipe.from_obj(obj).digest()


def run_vkey(text: str) -> None:
    try:
        note.NoteVerifier.from_string(text)
    finally:
        note.NoteSigner.from_string(text)


def run_names(text: str) -> None:
    for check in (names.validate_name, names.validate_namespace, lambda t: name_from_record_path(t, 1),
                  lambda t: name_from_record_path(t, 2)):
        try:
            check(text)
        except PdsError:
            pass
    names.in_namespace(NAMES[0], text)


def run_signature(data: bytes) -> None:
    signer_key(data, b"tree 0000\n\npayload\n")


def run_yamldoc(data: bytes) -> None:
    yamldoc.parse_mapping(data, "x.yaml", {"a", "b"})


def run_jsondoc(data: bytes) -> None:
    jsondoc.loads(data, "x.json", max_bytes=1 << 20)


def _vkey_texts() -> st.SearchStrategy[str]:
    good = [str(VERIFIER), SIGNER.to_string(), str(OTHER_SIGNER.verifier())]
    return st.one_of(st.sampled_from(good), st.text(max_size=80),
                     st.builds(lambda s, i, t: s[:i] + t + s[i + 1:], st.sampled_from(good), st.integers(0, 120),
                               st.sampled_from(["", "+", " ", "=", "\udc80", "A", "\u00e9", "++"]) | st.text(max_size=3)))


def _name_texts() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=140), st.sampled_from(NAMES[:3] + ["*", "be.*", "be..x", "a" * 200 + ".b"]),
                     st.from_regex(r"[A-Za-z0-9_.*/-]{0,20}", fullmatch=True),
                     st.sampled_from([binding_path(NAMES[0], 1), result_path(NAMES[1], 1), binding_path(NAMES[0], 2),
                                      result_path(NAMES[1], 2), "bindings/00/00/x.y.json", "bindings/0/0/0/0/x.y.json",
                                      "results/../../a.b.json"]))


@dataclass(frozen=True)
class Target:
    name: str
    strategy: st.SearchStrategy
    run: Callable[[Any], None]


TARGETS = [
    Target("proof JSON", json_docs([p.to_obj() for p in PROOFS]), run_proof),
    Target("STR / signed note", note_bytes(), run_note),
    Target("tile", tile_bytes(), run_tile),
    Target("binding bytes", json_docs([BINDINGS[NAMES[0]].to_obj()]), run_binding),
    Target("binding object", json_docs([BINDINGS[NAMES[1]].to_obj()]), run_binding_obj),
    Target("PQUIC .plugin", pquic_files(), run_pquic),
    Target("xBGP manifest.json", json_docs([XBGP]), run_xbgp),
    Target("manifest discovery", json_docs([XBGP]), run_xbgp_find),
    Target("trust.yaml", yaml_docs([TRUST]), run_trust),
    Target("pv.yaml", yaml_docs([PV_YAML]), run_pv_yaml),
    Target("policy.yaml", yaml_docs([POLICY]), run_policy),
    Target("pds-notify.yaml", yaml_docs([NOTIFY]), run_notify),
    Target("bundle JSON", json_docs([BUNDLE]), run_bundle),
    Target("formula", formula_text(), run_formula),
    Target("peer state file", json_docs([{"v": 1, "pvs": {"pv1.example": {"epoch": 2, "note": STR_A.note.decode(),
                                                                         "seen": 1_700_000_000, "source": "x"}}}]),
           run_peer_state),
    Target("equivocation evidence", json_docs([json.loads(EVIDENCE)]), run_evidence),
    Target("epoch record", json_docs([RECORD.to_obj()]), run_record),
    Target("bindings JSONL", json_docs([BINDINGS[n].to_obj() for n in NAMES[:2]]).map(
        lambda d: d + b"\n" + BINDINGS[NAMES[2]].encode() + b"\n"), run_bindings_jsonl),
    Target("build recipe", json_docs([RECIPE]), run_recipe),
    Target("note keys", _vkey_texts(), run_vkey),
    Target("names and paths", _name_texts(), run_names),
    Target("commit SSH signature", signatures(), run_signature),
    Target("yamldoc", yaml_docs([{"a": 1, "b": [1, 2]}]), run_yamldoc),
    Target("jsondoc", json_docs([{"a": [1, 2.5, None, True, "x"]}]), run_jsondoc),
]


def outcome(target: Target, value: Any) -> BaseException | None:
    """None when the parser returned or raised a PdsError; else the stray exception."""
    try:
        target.run(value)
    except PdsError:
        return None
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return exc
    return None


# ------------------------------------------------------------------ the tests
@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_parser_yields_a_value_or_a_pds_error(target: Target) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def check(value: Any) -> None:
        stray = outcome(target, value)
        if stray is not None:
            raise AssertionError(f"{target.name}: {type(stray).__name__}: {stray!s:.200} on {value!r:.300}") from stray

    check()


def test_valid_documents_still_parse() -> None:
    """The fuzz seeds are real, valid documents: the strategies start from accepted inputs."""
    for p in PROOFS:
        assert verify_proof(Proof.from_json(p.to_json()), ROOT, 2) in ("inclusion", "absence")
    assert open_str(STR_A.note, VERIFIER).head.epoch == 2
    assert equivocation.check(EVIDENCE, VERIFIER).epoch == 2
    assert EpochRecord.decode(RECORD.encode()).to_obj() == RECORD.to_obj()
    assert set(parse_trust(render_yaml(TRUST), "t", base=Path("/x")).pvs) == {"pv1", "pv2"}
    assert parse_config(render_yaml(PV_YAML).encode(), Path("/x/pv.yaml")).jobs == 0
    assert Policy.parse(render_yaml(POLICY)).developers[0].name == "alice"
    assert len(parse_webhooks(render_yaml(NOTIFY).encode(), "n")) == 2
    assert parse_bundle(render_json(BUNDLE).encode())["name"] == NAMES[0]
    assert parse_xbgp({"manifest.json": render_json(XBGP).encode()}, "be.example.x").pluglets == ("a.o", "sub/b.o")
    assert parse_pquic({"x.plugin": b"be.example.x negotiate\nupdate_rtt param 0x1f replace a.o\n"}, "x.plugin").hooks
    for h, data in TILE_BYTES.items():
        assert Tile.decode(data).top_hash() == h
    assert Formula.parse("pv1 & (pv2 | pv1.termination)").evaluate({"pv1": True, "pv2": True})


@pytest.mark.parametrize("make, where", [
    (lambda: parse_config("version: 1\norigin: \xff\n".encode("latin-1"), Path("/x/pv.yaml")), "/x/pv.yaml"),
    (lambda: parse_trust("version: " + "9" * 5000 + "\n", "trust.yaml"), "trust.yaml"),
    (lambda: Policy.parse("version: " + "9" * 5000 + "\n"), "pds/policy.yaml"),
    (lambda: Policy.parse("version: 1\nadmins: " + "[" * DEEP + "\n"), "pds/policy.yaml: YAML nested deeper than 64"),
    (lambda: Policy.parse(render_yaml({**POLICY, "developers": [{**POLICY["developers"][0], "valid_before": 10**20}]})),
     "developers[0].valid_before: 100000000000000000000 is out of range"),
    (lambda: parse_trust(b"version: 1\npvs: {pv1: {vkey: \"a\\ud800+00000000+AA\"}}\n", "trust.yaml"),
     "trust.yaml: a string holds a lone surrogate"),
    (lambda: parse_xbgp({"manifest.json": b'{"jit_all": ' + b"9" * 5000 + b"}"}, "be.example.x"), "manifest.json"),
    (lambda: parse_xbgp({"manifest.json": b"[" * DEEP + b"]" * DEEP}, "be.example.x"), "manifest.json"),
    (lambda: Formula.parse("a + ( | b)x"), "a + ( | b)x"),
    (lambda: parse_trust(render_yaml({**TRUST, "require": "pv1 + ( | pv2)x"}), "trust.yaml"), "pv1 + ( | pv2)x"),
    (lambda: Proof.from_json(b'{"v":1,"name":"\\ud800"}'), "proof"),
    (lambda: parse_bundle(render_json({**BUNDLE, "bytecode": {"../../etc/passwd": "1" * 64}}).encode()), "bundle"),
])
def test_known_crashes_are_format_errors_naming_the_place(make, where) -> None:
    """The crashes a fuzz run found before the fix, each now one error naming the file or formula."""
    with pytest.raises(PdsError) as caught:
        make()
    assert type(caught.value).__name__ == "FormatError" and where in str(caught.value)


@pytest.mark.slow
def test_cli_reports_hostile_files_in_one_line(tmp_path, pds) -> None:
    """The real CLI, on the hostile files of the issue: one error line naming the file, no traceback."""
    (tmp_path / "pv.yaml").write_bytes(b"version: 1\norigin: \xff\xfe\n")
    (tmp_path / "big.yaml").write_text("version: " + "9" * 5000 + "\n")
    (tmp_path / "formula.yaml").write_text(render_yaml({**TRUST, "require": "pv1 + ( | pv2)x"}))
    (tmp_path / "deep.json").write_bytes(b"[" * DEEP + b"]" * DEEP)
    (tmp_path / "evidence.json").write_bytes(b'{"type": "pds-equivocation", "notes": ' + b"[" * DEEP + b"]" * DEEP + b"}")
    (tmp_path / "bad.jsonl").write_bytes(BINDINGS[NAMES[0]].encode() + b"\n\xff\n")
    cases = [
        (("pv", "epoch", "--config", tmp_path / "pv.yaml"), "pv.yaml: not UTF-8 (byte 19)"),
        (("peer", "verify", "--trust", tmp_path / "big.yaml", NAMES[0]), "big.yaml:1:10: invalid YAML (integer of 5000"),
        (("peer", "verify", "--trust", tmp_path / "formula.yaml", NAMES[0]), "require: formula 'pv1 + ( | pv2)x'"),
        (("tree", "check", tmp_path / "deep.json", "00" * 32), "invalid: proof: JSON nested too deeply"),
        (("note", "verify", tmp_path / "evidence.json", str(VERIFIER)), "invalid: evidence: JSON nested too deeply"),
        (("tree", "root", tmp_path / "bad.jsonl"), "bad.jsonl:2: not UTF-8 (byte 0)"),
    ]
    for args, message in cases:
        result = pds(*args, cwd=tmp_path)
        out = (result.stdout + result.stderr).decode()
        assert result.returncode != 0, (args, out)
        assert message in out, (args, out)
        assert "Traceback" not in out and len(out.strip().splitlines()) == 1, (args, out)
