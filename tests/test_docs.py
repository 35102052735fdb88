"""The docs stay true to the code: event types and fields, config keys, the systemd unit."""

from __future__ import annotations

import configparser
import re
import shlex
from dataclasses import fields

import pytest

from counterfloor.cli import build_parser
from office import events as ev
from tests.conftest import ROOT

EVENTS_DOC = (ROOT / "docs" / "events.md").read_text()


@pytest.mark.parametrize("cls", list(ev.EVENT_TYPES.values()), ids=list(ev.EVENT_TYPES))
def test_every_event_type_and_public_field_is_documented(cls: type[ev.Event]) -> None:
    row = next((line for line in EVENTS_DOC.splitlines() if line.startswith(f"| `{cls.TYPE}` |")), None)
    assert row is not None, f"docs/events.md has no row for {cls.TYPE}"
    for f in fields(cls)[2:]:
        if f.name not in ev.PRIVATE_FIELDS:
            assert f"`{f.name}`" in row, f"{cls.TYPE}.{f.name} is not documented"
    assert "`token`" not in row  # private: never exported


def test_the_documented_types_all_exist() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \|", EVENTS_DOC.split("## Types", 1)[1], re.M)
    assert set(documented) == set(ev.EVENT_TYPES)


def test_the_systemd_unit_runs_a_real_command() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "deploy" / "counterfloor-gateway.service")
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/counterfloor")
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.action) == ("gateway", "run")
    assert str(args.config) == "/etc/counterfloor/office.toml"
