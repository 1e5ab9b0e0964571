"""pv.yaml `str_version`, `witnesses:` and `witness_timeout`: hostile values are refused with
an error naming the file and the field, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pds_log.core.checkpoint import CosignatureSigner
from pds_log.core.errors import FormatError
from pds_log.pv.config import parse_config

W1 = CosignatureSigner("witness.example/w1", bytes(range(32, 64))).verifier()
BASE = {"version": 1, "origin": "pv1.example", "pr": {"url": "/srv/pr.git"}, "keys": {"note": "keys/note.key"},
        "verifiers": {"safety": {"runner": "bytecode_safety"}}, "acceptance": "safety"}


def parse(**extra):
    return parse_config(yaml.safe_dump({**BASE, **extra}).encode(), Path("/srv/pv/pv.yaml"))


def test_defaults_stay_v1_without_witnesses():
    config = parse()
    assert config.str_version == 1 and config.witnesses == [] and config.witness_timeout == 5


def test_v2_with_witnesses():
    config = parse(str_version=2, witness_timeout=2.5,
                   witnesses=[{"name": W1.name, "vkey": str(W1), "url": "http://127.0.0.1:8080"}])
    assert config.str_version == 2 and config.witness_timeout == 2.5
    assert config.witnesses[0].verifier == W1 and config.witnesses[0].url == "http://127.0.0.1:8080"


GOOD = {"name": W1.name, "vkey": str(W1), "url": "https://w1.example"}


@pytest.mark.parametrize("extra, message", [
    ({"str_version": 3}, "'str_version' must be 1 or 2"),
    ({"str_version": True}, "'str_version' must be 1 or 2"),
    ({"witnesses": [GOOD]}, "'witnesses' need 'str_version: 2'"),
    ({"str_version": 2, "witnesses": {"w1": GOOD}}, "'witnesses' must be a list"),
    ({"str_version": 2, "witnesses": [{**GOOD, "extra": 1}]}, "witnesses[0]: expected exactly 'name', 'vkey' and 'url'"),
    ({"str_version": 2, "witnesses": [{**GOOD, "vkey": "w+00+AA"}]}, "witnesses[0]: vkey:"),
    ({"str_version": 2, "witnesses": [{**GOOD, "vkey": str(W1).replace("+BC", "+AQ")}]}, "witnesses[0]: vkey:"),
    ({"str_version": 2, "witnesses": [{**GOOD, "name": "witness.example/w2"}]}, "the vkey is named"),
    ({"str_version": 2, "witnesses": [{**GOOD, "url": "file:///etc/passwd"}]}, "is not an http(s) URL"),
    ({"str_version": 2, "witnesses": [GOOD, dict(GOOD)]}, "witnesses[1]: witness witness.example/w1 listed twice"),
    ({"str_version": 2, "witness_timeout": 0}, "'witness_timeout' must be a number of seconds"),
    ({"str_version": 2, "witness_timeout": "5"}, "'witness_timeout' must be a number of seconds"),
    ({"str_version": 2, "witness_timeout": 10_000}, "'witness_timeout' must be a number of seconds"),
])
def test_hostile_settings_are_refused_naming_the_field(extra, message):
    with pytest.raises(FormatError) as exc:
        parse(**extra)
    assert message in str(exc.value) and "/srv/pv/pv.yaml" in str(exc.value)
