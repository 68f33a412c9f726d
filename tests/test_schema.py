"""``mentorflow schema``: the definition's JSON Schema, which editors check YAML against.

The committed ``definitions/schema.json`` must be what the model says today (run
``mentorflow schema`` after changing ``mentorflow/definition.py``), the shipped
definitions must pass it, and what it says of dates, durations and limits must agree
with what the loader accepts, so the editor flags neither less nor more than
``mentorflow validate`` on the values it checks.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter
from pydantic_core import PydanticCustomError
from typer.testing import CliRunner

from mentorflow import cli, limits
from mentorflow.definition import (
    DefinitionError,
    ProgramDatetime,
    _read_yaml,
    parse_definition,
    parse_duration,
)

ROOT = Path(__file__).parent.parent
DEFINITIONS = ROOT / "definitions"
SCHEMA_FILE = DEFINITIONS / "schema.json"
SHIPPED = sorted(DEFINITIONS.glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=./schema.json"


def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def file_data(path: Path) -> Any:
    """The file's data as the loader reads it: dates stay text, as YAML 1.2 editors read
    them (PyYAML's safe_load would make ``2027-04-08 23:59:00`` a datetime)."""
    return _read_yaml(path.read_text(encoding="utf-8"))[0]


def test_the_committed_schema_is_the_models() -> None:
    result = CliRunner().invoke(cli.app, ["schema", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "definitions/schema.json is stale: run `mentorflow schema` and commit it"
    )


def test_the_command_writes_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "definitions").mkdir()
    default = CliRunner().invoke(cli.app, ["schema"])
    assert default.exit_code == 0, default.output
    written = (tmp_path / "definitions" / "schema.json").read_text(encoding="utf-8")
    assert written == cli.schema_text()
    assert json.loads(written)["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    elsewhere = CliRunner().invoke(cli.app, ["schema", "--output", "out.json"])
    assert elsewhere.exit_code == 0 and "Wrote out.json" in elsewhere.stdout
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == written

    nowhere = CliRunner().invoke(cli.app, ["schema", "-o", "missing/schema.json"])
    assert nowhere.exit_code == 1 and isinstance(nowhere.exception, cli.Failure)
    assert "cannot write missing/schema.json" in str(nowhere.exception)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_definitions_pass_the_schema(path: Path) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(file_data(path))
    ]
    assert errors == []
    # The modeline points VS Code's YAML extension at the schema beside the file.
    assert path.read_text(encoding="utf-8").splitlines()[0] == MODELINE


def test_the_shipped_definitions_are_there() -> None:
    assert {p.name for p in SHIPPED} >= {"demo.yaml", "cross-agency-2027.yaml"}


# What the schema's patterns say, and what the loader does, for each kind of value.
DATES = [
    ("2027-04-08 23:59", True),
    ("2027-04-08T23:59", True),
    ("2027-04-08t23:59:30", True),
    ("2027-04-08 23:59:30.5", True),
    ("2027-04-08 23:59+02:00", True),
    ("2027-04-08 23:59+0200", True),
    ("2027-04-08T23:59Z", True),
    ("2027-04-08", True),
    ("+PT5M", True),
    ("+P1DT2H", True),
    ("2027-04-08 9:00", False),
    ("2027-4-8 23:59", False),
    ("2027-04-08 23", False),
    ("2027-04-08 23:59 +02:00", False),
    ("+5 minutes", False),
    ("+P1M", False),
    ("+PT", False),
    ("tomorrow", False),
]
DURATIONS = [
    ("P7D", True),
    ("PT30M", True),
    ("P2W", True),
    ("P1Y", True),
    ("P1DT12H", True),
    ("PT1H30M15S", True),
    ("P", False),
    ("PT", False),
    ("P1DT", False),
    ("P1M", False),
    ("PT1.5H", False),
    ("-P1D", False),
    ("p1d", False),
    ("1 day", False),
    ("3600", False),
]


@pytest.mark.parametrize(("text", "valid"), DATES)
def test_the_schema_reads_dates_as_the_loader_does(text: str, valid: bool) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    opens = schema["$defs"]["ApplicationWindow"]["properties"]["opens"]
    assert jsonschema.Draft202012Validator(opens).is_valid(text) is valid
    adapter: TypeAdapter[Any] = TypeAdapter(ProgramDatetime)
    try:
        adapter.validate_python(text, context={"from_file": True})
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert accepted is valid


@pytest.mark.parametrize(("text", "valid"), DURATIONS)
def test_the_schema_reads_durations_as_the_loader_does(text: str, valid: bool) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    length = schema["$defs"]["Meetings"]["properties"]["length"]
    assert jsonschema.Draft202012Validator(length).is_valid(text) is valid
    try:
        parse_duration(text)
    except PydanticCustomError:
        accepted = False
    else:
        accepted = True
    assert accepted is valid


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    target: Any = changed
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("name",), "x" * (limits.NAME_LIMIT + 1)),
        (("name",), "   "),
        (("description",), "x" * (limits.DESCRIPTION_LIMIT + 1)),
        (("organisers",), ["Demo Company"] * 51),
        (("kind",), "peer"),
        (("id",), "Demo"),
        (("meetings", "cadence", 0, "every"), "P1M"),
        (("meetings", "cadence", 0, "every"), "weekly"),
        (("meetings", "cadence", 0, "for"), 600),
        (("evaluation", "questions", 0, "scale_max"), 101),
        (("schedule", "kickoff", "online_url"), "ftp://example.org/kickoff"),
        (("application", "deadline"), "2027-04-08 9:00"),
        (("application", "colour"), "blue"),
    ],
)
def test_what_the_schema_refuses_the_loader_refuses(
    path: tuple[str | int, ...], value: Any
) -> None:
    data = _set(file_data(DEFINITIONS / "demo.yaml"), path, value)
    assert not validator().is_valid(data)
    with pytest.raises(DefinitionError):
        parse_definition(data)
