"""`pds tree`, `pds key`, `pds note` as a user runs them: exit codes and one-line errors."""

import json

from pds_log.core.note import NoteSigner, sign


def write_bindings(tmp_path, names):
    path = tmp_path / "b.jsonl"
    lines = []
    for i, n in enumerate(names):
        lines.append(json.dumps({"v": 1, "name": n, "manifest": {"path": "m.plugin", "sha256": "ab" * 32},
                                 "pluglets": {"a.o": f"{i:02x}" * 32}, "source": "12" * 20,
                                 "properties": ["reproducible"]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tree_root_prove_check(tmp_path, pds):
    bfile = write_bindings(tmp_path, ["be.example.a", "be.example.b", "be.example.c"])
    root = pds("tree", "root", bfile)
    assert root.returncode == 0, root.stderr
    root_hex = root.stdout.decode().strip()
    assert len(root_hex) == 64
    for name, kind in [("be.example.a", "inclusion"), ("be.example.zzz", "absence")]:
        proof = pds("tree", "prove", bfile, name)
        assert proof.returncode == 0
        obj = json.loads(proof.stdout)
        assert obj["epoch"] == 0 and obj["name"] == name
        pfile = tmp_path / f"{name}.json"
        pfile.write_bytes(proof.stdout)
        ok = pds("tree", "check", pfile, root_hex)
        assert ok.returncode == 0 and f"valid: {kind}" in ok.stdout.decode()
        bad = pds("tree", "check", pfile, "00" * 32)
        assert bad.returncode == 1 and "does not match the root" in bad.stdout.decode()


def test_tree_bad_inputs_are_one_line_errors(tmp_path, pds):
    bfile = write_bindings(tmp_path, ["be.example.a"])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    cases = [
        (("tree", "check", bad_json, "00" * 32), "invalid JSON"),
        (("tree", "check", bad_json, "xyz"), "is not 64 hex"),
        (("tree", "check", tmp_path / "missing.json", "00" * 32), "No such file"),
        (("tree", "prove", bfile, "nodots"), "invalid plugin name"),
    ]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(bfile.read_text() + '{"v":1}\n')
    cases.append((("tree", "root", broken), "broken.jsonl:2: wrong keys"))
    for args, message in cases:
        result = pds(*args)
        out = (result.stdout + result.stderr).decode()
        assert result.returncode != 0, args
        assert message in out, (args, out)
        assert "Traceback" not in out


def test_key_generate_and_note_verify(tmp_path, pds):
    keyfile = tmp_path / "pv1.key"
    gen = pds("key", "generate", "pv1.example", "--out", keyfile)
    assert gen.returncode == 0
    vkey = gen.stdout.decode().strip()
    assert vkey.startswith("pv1.example+") and (keyfile.stat().st_mode & 0o777) == 0o600
    again = pds("key", "generate", "pv1.example", "--out", keyfile)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr.decode()
    signer = NoteSigner.from_string(keyfile.read_text())
    note = tmp_path / "n.note"
    note.write_bytes(sign("hello\n", [signer]))
    ok = pds("note", "verify", note, vkey)
    assert ok.returncode == 0 and "valid: signed by pv1.example" in ok.stdout.decode()
    ok_file = pds("note", "verify", note, str(keyfile) + ".pub")
    assert ok_file.returncode == 0
    other = NoteSigner.generate("pv1.example")
    note.write_bytes(sign("hello\n", [other]))
    bad = pds("note", "verify", note, vkey)
    assert bad.returncode == 1 and "no valid signature" in bad.stdout.decode()
    malformed = pds("note", "verify", note, "garbage")
    assert malformed.returncode == 2 and "malformed verifier key" in malformed.stderr.decode()  # a usage error
