import pytest

from pds_log.core.errors import FormatError
from pds_log.core.yamldoc import parse_mapping


def test_parse_mapping():
    assert parse_mapping("a: 1\n", "x.yaml", {"a"}) == {"a": 1}
    with pytest.raises(FormatError, match=r"^x.yaml:2:1: invalid YAML \(expected the node content"):
        parse_mapping("a: [\n", "x.yaml")
    with pytest.raises(FormatError, match="x.yaml: must be a mapping"):
        parse_mapping("- 1\n", "x.yaml")
    with pytest.raises(FormatError, match=r"x.yaml: unknown key\(s\) b, c"):
        parse_mapping("a: 1\nc: 2\nb: 3\n", "x.yaml", {"a"})
