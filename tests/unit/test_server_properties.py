"""Java properties parsing and canal placeholder resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
import services

from adapter.errors import ConfigError
from adapter.server.properties import Layer, Properties, load_properties, parse_properties

COMPAT = Path(services.COMPAT) / "server-conf"


def test_separators_and_whitespace() -> None:
    p = parse_properties("a=1\nb : 2\nc 3\n  d\t=\t4  \ne=\nf\n g = x = y\n")
    assert p == {"a": "1", "b": "2", "c": "3", "d": "4  ", "e": "", "f": "", "g": "x = y"}


def test_comments_and_blank_lines() -> None:
    p = parse_properties("# c1\n! c2\n   # indented comment\n\nk=v\n#x=y\\\nz=1\n")
    assert p == {"k": "v", "z": "1"}  # a comment's trailing backslash does not continue it


def test_escapes_and_backslash_doubling() -> None:
    p = parse_properties(r"regex=.*\\..*" + "\n" + r"t=a\tb\nc\u0041\=\:\ d" + "\n" + r"key\ with\=eq = v")
    assert p["regex"] == r".*\..*"
    assert p["t"] == "a\tb\ncA=: d"
    assert p["key with=eq"] == "v"


def test_continuation_lines() -> None:
    p = parse_properties("list = a,\\\n     b,\\\n\tc\nx=\\\\\ny=1\n")
    assert p["list"] == "a,b,c"
    assert p["x"] == "\\"  # an even number of trailing backslashes does not continue
    assert p["y"] == "1"


def test_malformed_unicode_escape_names_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"f\.properties.*key 'k'"):
        parse_properties(r"k=\u12x", "f.properties")


def test_later_duplicates_win() -> None:
    assert parse_properties("k=1\nk=2")["k"] == "2"


def test_placeholders_resolve_against_layers_and_environment() -> None:
    props = Properties(
        [Layer("canal.properties", {"dir": "../conf", "data": "${dir}", "tsdb": "${data:x}/${dest:}", "k": "v"}),
         Layer("instance.properties", {"dest": "example", "k": "override", "env": "${HOME_X}"})],
        env={"HOME_X": "/home/x"},
    )
    assert props.get("data") == "../conf"
    assert props.get("tsdb") == "../conf/example"
    assert props.get("k") == "override"
    assert props.get("env") == "/home/x"
    assert props.get("missing", "dflt") == "dflt"
    assert Properties([Layer("f", {"a": "${nope:}z"})], env={}).get("a") == "z"


def test_environment_overrides_files() -> None:
    props = Properties([Layer("f", {"canal.port": "11111"})], env={"canal.port": "2222"})
    assert props.get("canal.port") == "2222"


def test_unresolvable_and_cyclic_placeholders_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cannot resolve placeholder"):
        Properties([Layer("f", {"a": "${b}"})], env={}).get("a")
    with pytest.raises(ConfigError, match="cycle"):
        Properties([Layer("f", {"a": "${b}", "b": "${a}"})], env={}).get("a")


def test_compat_files_parse() -> None:
    main = load_properties(COMPAT / "canal.properties")
    inst = load_properties(COMPAT / "example" / "instance.properties")
    assert main["canal.port"] == "11111"
    assert main["canal.instance.memory.buffer.memunit"] == "1024 "
    assert inst["canal.instance.filter.regex"] == r".*\..*"
    assert inst["canal.instance.filter.black.regex"] == r"mysql\.slave_.*"


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.properties"):
        load_properties(tmp_path / "nope.properties")
