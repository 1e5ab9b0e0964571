import json

import pytest

from pds_log.core.binding import Binding, canonical_json, plugin_files_digest
from pds_log.core.errors import FormatError
from pds_log.core.names import in_namespace, name_key, validate_name, validate_namespace

H = "ab" * 32
COMMIT = "12" * 20


def good() -> Binding:
    return Binding.create("be.example.foo", "foo.plugin", H, {"b.o": H, "a.o": H}, COMMIT,
                          ["termination", "reproducible", "reproducible"])


def test_canonical_encoding_is_exact():
    b = good()
    assert b.encode() == (
        '{"manifest":{"path":"foo.plugin","sha256":"' + H + '"},"name":"be.example.foo",'
        '"pluglets":{"a.o":"' + H + '","b.o":"' + H + '"},"properties":["reproducible","termination"],'
        '"source":"' + COMMIT + '","v":1}').encode()
    assert Binding.decode(b.encode()) == b
    assert len(b.value()) == 32


def test_non_canonical_binding_rejected():
    data = json.dumps(good().to_obj(), indent=1).encode()
    with pytest.raises(FormatError, match="canonical"):
        Binding.decode(data)


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(v=2), "unsupported binding version"),
    (lambda o: o.update(extra=1), "unexpected"),
    (lambda o: o["manifest"].update(sha256="AB" * 32), "lowercase hex"),
    (lambda o: o.update(source="xyz"), "source must be"),
    (lambda o: o.update(properties=["b", "a"]), "sorted and unique"),
    (lambda o: o.update(pluglets={}), "non-empty"),
    (lambda o: o.update(pluglets={"../x.o": H}), "unsafe path"),
    (lambda o: o.update(name="x"), "invalid plugin name"),
])
def test_strict_binding_parse(change, message):
    obj = good().to_obj()
    change(obj)
    with pytest.raises(FormatError, match=message):
        Binding.from_obj(obj)


@pytest.mark.parametrize("name", ["be.example", "a.b.c", "A_-9.x", "a." * 63 + "bc"])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["single", "a..b", ".a.b", "a.b.", "a/b.c", "a b.c", "ä.b", "a." * 64 + "b", ""])
def test_invalid_names(name):
    with pytest.raises(FormatError):
        validate_name(name)


def test_name_key_and_namespaces():
    import hashlib
    assert name_key("be.example.foo") == hashlib.sha256(b"be.example.foo").digest()
    assert in_namespace("be.example.foo", "be.example.*")
    assert in_namespace("be.example.a.b", "be.example.*")
    assert not in_namespace("be.example", "be.example.*")
    assert not in_namespace("be.examplex.foo", "be.example.*")
    assert in_namespace("any.thing", "*")
    with pytest.raises(FormatError):
        validate_namespace("be.example")


def test_plugin_files_digest_is_order_independent_and_content_sensitive():
    a = plugin_files_digest({"x.c": b"1", "y.o": b"2"})
    assert a == plugin_files_digest({"y.o": b"2", "x.c": b"1"})
    assert a != plugin_files_digest({"x.c": b"1", "y.o": b"3"})
    assert a != plugin_files_digest({"x.c": b"1", "z.o": b"2"})
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
