"""Property round-trips for the wire formats a peer or an auditor decodes: signed notes,
bindings, PQUIC manifests and requirement formulas. Each property says what the format
promises: encode then decode gives back the same value, and the encoding is the only one
accepted (a change to any signed byte is caught)."""

from __future__ import annotations

import itertools
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pds_log.core import note as notes
from pds_log.core.binding import Binding
from pds_log.core.errors import FormatError, VerificationError
from pds_log.core.formula import Formula
from pds_log.core.manifest import PQUIC_ANCHORS, parse_pquic

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

key_names = st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)
# Note text: printable lines (no control characters), each ending in a newline, no blank line.
note_lines = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)
note_texts = st.lists(note_lines, min_size=1, max_size=6).map(lambda lines: "".join(f"{ln}\n" for ln in lines))
SIGNERS = [notes.NoteSigner.generate(f"pv{i}.example") for i in range(3)]


@SETTINGS
@given(text=note_texts, count=st.integers(min_value=1, max_value=3))
def test_signed_note_round_trip(text, count):
    signers = SIGNERS[:count]
    data = notes.sign(text, signers)
    note, signed_by = notes.open_note(data, [s.verifier() for s in signers])
    assert note.text == text
    assert note.serialize() == data
    assert {v.name for v in signed_by} == {s.name for s in signers}


@SETTINGS
@given(text=note_texts, position=st.integers(min_value=0), replacement=st.sampled_from("xY0 é"))
def test_a_changed_note_text_is_not_accepted(text, position, replacement):
    data = notes.sign(text, SIGNERS[:1])
    i = position % len(text)
    if text[i] == replacement:
        return
    changed = text[:i] + replacement + text[i + 1:]
    forged = changed.encode() + data[len(text.encode()):]
    with pytest.raises((FormatError, VerificationError)):
        notes.open_note(forged, [SIGNERS[0].verifier()])


hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
labels = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
plugin_names = st.lists(labels, min_size=2, max_size=4).map(".".join)
object_paths = st.lists(labels, min_size=1, max_size=3).map(lambda parts: "/".join(parts) + ".o")
properties = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True), max_size=4)


@SETTINGS
@given(name=plugin_names, manifest=object_paths, manifest_sha=hex64,
       pluglets=st.dictionaries(object_paths, hex64, min_size=1, max_size=5),
       source=st.text(alphabet="0123456789abcdef", min_size=40, max_size=40), props=properties)
def test_binding_round_trip(name, manifest, manifest_sha, pluglets, source, props):
    binding = Binding.create(name, manifest.replace(".o", ".plugin"), manifest_sha, pluglets, source, props)
    data = binding.encode()
    again = Binding.decode(data)
    assert again == binding
    assert again.encode() == data
    assert again.value() == binding.value()
    with pytest.raises(FormatError):  # the canonical bytes are the only encoding accepted
        Binding.decode(data.replace(b",", b", ", 1))


idents = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
hooks = st.tuples(idents, st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFF)),
                  st.sampled_from(sorted(PQUIC_ANCHORS)), object_paths)


@SETTINGS
@given(name=plugin_names, hook_list=st.lists(hooks, min_size=1, max_size=12),
       comments=st.lists(st.integers(min_value=0, max_value=12), max_size=3))
def test_pquic_manifest_round_trip(name, hook_list, comments):
    seen, unique = set(), []
    for point, param, anchor, obj in hook_list:  # PQUIC refuses a second 'replace' of one protoop
        if anchor == "replace" and (point, param) in seen:
            continue
        seen.add((point, param))
        unique.append((point, param, anchor, obj))
    lines = [name]
    for point, param, anchor, obj in unique:
        lines.append(f"{point} {anchor} {obj}" if param is None else f"{point} param {param:#x} {anchor} {obj}")
    for at in sorted(comments, reverse=True):  # comment and blank lines anywhere after the name
        lines.insert(1 + min(at, len(lines) - 1), "# a comment" if at % 2 else "")
    manifest = parse_pquic({"x.plugin": ("\n".join(lines) + "\n").encode()}, "x.plugin")
    assert manifest.name == name
    assert [(h.point, h.param, h.anchor, h.pluglet) for h in manifest.hooks] == unique


pv_names = st.sampled_from(["pv1", "pv2", "pv3", "pv4"])
atoms = st.one_of(pv_names, st.tuples(pv_names, st.sampled_from(["termination", "safety"])).map(".".join))
formulas = st.recursive(atoms, lambda inner: st.tuples(inner, st.sampled_from([" & ", " | "]), inner)
                        .map(lambda t: f"({t[0]}{t[1]}{t[2]})"), max_leaves=8)


def _truth_tables(formula: Formula):
    atoms_ = sorted({str(a) for a in formula.atoms})
    for values in itertools.product([False, True], repeat=len(atoms_)):
        yield dict(zip(atoms_, values, strict=True))


@SETTINGS
@given(text=formulas)
def test_formula_round_trip(text):
    formula = Formula.parse(text)
    again = Formula.parse(str(formula))
    assert {str(a) for a in again.atoms} == {str(a) for a in formula.atoms}
    for truth in _truth_tables(formula):
        approved = {pv: any(v for a, v in truth.items() if a.split(".")[0] == pv) for pv in formula.pvs}
        props = {pv: [a.split(".")[1] for a, v in truth.items() if v and "." in a and a.split(".")[0] == pv]
                 for pv in formula.pvs}
        assert formula.evaluate_with(approved, props) == again.evaluate_with(approved, props)


@SETTINGS
@given(text=st.text(alphabet=string.ascii_letters + string.digits + " &|().~!+-", max_size=60))
def test_formula_parser_raises_only_format_errors(text):
    try:
        Formula.parse(text)
    except FormatError:
        pass
