"""Meltano setting definitions derived from ``tap-smartflo --about --format=json``.

The tap's settings schema (``tap.py``) is the one source of truth. meltano.yml and the
Meltano Hub definition repeat it in Meltano's terms (``kind``, ``label``,
``sensitive``...); the tests compare them with what this module derives, so a setting
added to the tap fails the tests until both files declare it. Run after changing a
setting: ``.venv/bin/python -m scripts.plugin_settings`` rewrites both.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
MELTANO_YML = PROJECT / "meltano.yml"
HUB_YML = PROJECT / "hub" / "extractors" / "tap-smartflo" / "smartflo-community.yml"

#: JSON Schema type -> Meltano setting kind.
KIND_OF_TYPE = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def about() -> dict[str, t.Any]:
    """What ``tap-smartflo --about --format=json`` says, run as a user runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "tap_smartflo", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return t.cast("dict[str, t.Any]", json.loads(done.stdout))


def _types(schema: dict[str, t.Any]) -> list[str]:
    """The non-null JSON types a schema allows, in order, through anyOf/oneOf."""
    found: list[str] = []
    declared = schema.get("type", [])
    for name in [declared] if isinstance(declared, str) else declared:
        if name != "null" and name not in found:
            found.append(name)
    for member in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(member, dict):
            found += [name for name in _types(member) if name not in found]
    return found


def kind(schema: dict[str, t.Any]) -> str:
    """The Meltano kind for one setting's JSON Schema."""
    types = _types(schema)
    if schema.get("secret"):
        # A secret object (storage credentials) is still entered as an object.
        return "object" if types == ["object"] else "password"
    if schema.get("enum"):
        return "options"
    if schema.get("format") == "date-time":
        return "date_iso8601"
    # A value that may be one string or a list of them (faker_config.locale) is
    # entered as a list; any other choice of scalars is entered as text.
    if "array" in types:
        return "array"
    if len(types) > 1:
        return "string"
    return KIND_OF_TYPE[types[0]] if types else "string"


def _leaves(
    properties: dict[str, t.Any], prefix: str = ""
) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    """Settings as Meltano names them: nested objects become dotted names.

    An object with its own named properties is spread out (``batch_config.storage.
    root``), as ``--about --format=markdown`` and the Hub do; a free-form object
    (``stream_maps``, whose keys are stream names) stays one ``object`` setting.
    """
    for name, schema in properties.items():
        nested = schema.get("properties")
        free_form = isinstance(schema.get("additionalProperties"), dict)
        if nested and not free_form:
            yield from _leaves(nested, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", schema


def expected_settings(about_json: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The Meltano setting definitions the tap's ``--about`` calls for, in its order."""
    settings = []
    for name, schema in _leaves(about_json["settings"]["properties"]):
        entry: dict[str, t.Any] = {"name": name}
        if title := schema.get("title"):
            entry["label"] = title
        entry["kind"] = kind(schema)
        if schema.get("secret"):
            entry["sensitive"] = True
        if entry["kind"] == "options":
            entry["options"] = [
                {"label": str(value).title(), "value": value}
                for value in schema["enum"]
            ]
        if schema.get("default") is not None:
            entry["value"] = schema["default"]
        if description := schema.get("description"):
            entry["description"] = description
        settings.append(entry)
    return settings


def _dump(value: object) -> str:
    return yaml.safe_dump(value, sort_keys=False, width=88)


def rewrite_meltano_yml(settings: list[dict[str, t.Any]]) -> None:
    """Replace the extractor's ``settings:`` in meltano.yml, keeping the rest as is."""
    text = MELTANO_YML.read_text()
    extractor = text.index("\n  - name: tap-smartflo\n")
    start = text.index("\n    settings:\n", extractor) + len("\n    settings:\n")
    # The block is the list's lines ("    - ..." and deeper); what follows it (the
    # extractor's other keys, the accounts that inherit from it) stays.
    after = re.compile(r"^(?!    - |      )", re.MULTILINE).search(text, start)
    end = after.start() if after else len(text)
    block = "".join(f"    {line}\n" for line in _dump(settings).splitlines())
    MELTANO_YML.write_text(text[:start] + block + text[end:])


def rewrite_hub_definition(about_json: dict[str, t.Any]) -> None:
    """Rewrite the Hub definition's settings and capabilities, keys sorted as Hub's."""
    text = HUB_YML.read_text()
    comments = "".join(
        line for line in text.splitlines(keepends=True) if line.startswith("#")
    )
    definition = yaml.safe_load(text)
    definition["capabilities"] = sorted(about_json["capabilities"])
    definition["settings"] = sorted(
        (dict(sorted(entry.items())) for entry in expected_settings(about_json)),
        key=lambda entry: entry["name"],
    )
    HUB_YML.write_text(comments + _dump(dict(sorted(definition.items()))))


def main() -> None:
    """Bring meltano.yml and the Hub definition in step with ``--about``."""
    about_json = about()
    rewrite_meltano_yml(expected_settings(about_json))
    rewrite_hub_definition(about_json)


if __name__ == "__main__":
    main()
