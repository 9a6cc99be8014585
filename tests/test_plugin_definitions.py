"""meltano.yml and the Meltano Hub definition say what the tap's ``--about`` says."""

from __future__ import annotations

import typing as t

import pytest
import yaml

from scripts.plugin_settings import HUB_YML, MELTANO_YML, about, expected_settings
from tests.configs import REPO
from tests.running import discovered_catalog

#: Setting attributes that the tap's settings schema decides.
COMPARED = ("name", "label", "kind", "sensitive", "options", "value", "description")


@pytest.fixture(scope="module")
def about_json() -> dict[str, t.Any]:
    return about()


def meltano_yml_extractor() -> dict[str, t.Any]:
    project = yaml.safe_load(MELTANO_YML.read_text())
    extractors = project["plugins"]["extractors"]
    (extractor,) = (e for e in extractors if e["name"] == "tap-smartflo")
    return extractor


def test_every_account_in_meltano_yml_inherits_the_extractor_with_its_own_schema():
    project = yaml.safe_load(MELTANO_YML.read_text())
    accounts = [e for e in project["plugins"]["extractors"] if "inherit_from" in e]
    assert accounts, "meltano.yml shows no account of its own"
    schemas = {meltano_yml_extractor()["load_schema"]}
    for account in accounts:
        assert account["inherit_from"] == "tap-smartflo"
        # Credentials come from the account's own settings, never written here.
        assert set(account) == {"name", "inherit_from", "load_schema"}
        assert account["load_schema"] not in schemas
        schemas.add(account["load_schema"])


def hub_definition() -> dict[str, t.Any]:
    return yaml.safe_load(HUB_YML.read_text())


DEFINITIONS = {"meltano.yml": meltano_yml_extractor, "hub": hub_definition}


@pytest.fixture(params=DEFINITIONS)
def definition(request) -> dict[str, t.Any]:
    return DEFINITIONS[request.param]()


def by_name(settings: list[dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    return {s["name"]: {k: s[k] for k in COMPARED if k in s} for s in settings}


def test_every_setting_is_declared_as_about_describes_it(about_json, definition):
    expected = by_name(expected_settings(about_json))
    declared = by_name(definition["settings"])
    wanted = [
        setting
        for setting in expected_settings(about_json)
        if declared.get(setting["name"]) != expected[setting["name"]]
    ]
    # `python -m scripts.plugin_settings` declares them all.
    assert not wanted, "declare these settings:\n" + yaml.safe_dump(
        wanted, sort_keys=False
    )
    assert declared.keys() == expected.keys()


def test_secrets_are_sensitive_passwords(about_json, definition):
    secrets = {
        name
        for name, schema in about_json["settings"]["properties"].items()
        if schema.get("secret")
    }
    assert {"api_token", "password"} <= secrets
    properties = about_json["settings"]["properties"]
    for setting in definition["settings"]:
        is_secret = setting["name"] in secrets
        assert setting.get("sensitive", False) is is_secret, setting["name"]
        # A secret object (recordings_storage_options) is entered as an object.
        is_text = "object" not in properties.get(setting["name"], {}).get("type", [])
        assert (setting["kind"] == "password") is (is_secret and is_text), setting[
            "name"
        ]


#: The Meltano kinds that can hold a value of each JSON type.
KINDS_FOR_TYPE = {
    "string": {"string", "password", "date_iso8601", "options", "email", "file"},
    "integer": {"integer"},
    "number": {"decimal"},
    "boolean": {"boolean"},
    "object": {"object"},
    "array": {"array"},
}


def json_types(schema: dict[str, t.Any]) -> set[str]:
    declared = schema.get("type", [])
    types = {declared} if isinstance(declared, str) else set(declared)
    for member in schema.get("anyOf", []) + schema.get("oneOf", []):
        if isinstance(member, dict):
            types |= json_types(member)
    return types - {"null"}


def test_kinds_fit_the_json_types(about_json, definition):
    # Checked apart from scripts/plugin_settings: every kind can hold the values
    # the tap's schema allows (for a choice of types, at least one of them).
    for setting in definition["settings"]:
        schema = {"properties": about_json["settings"]["properties"]}
        for part in setting["name"].split("."):
            schema = schema["properties"][part]
        allowed = set().union(*(KINDS_FOR_TYPE[name] for name in json_types(schema)))
        assert setting["kind"] in allowed, (setting["name"], setting["kind"], allowed)
        if schema.get("format") == "date-time":
            assert setting["kind"] == "date_iso8601", setting["name"]


def test_every_setting_has_a_label_and_a_description(definition):
    for setting in definition["settings"]:
        assert setting.get("label"), setting["name"]
        assert setting.get("description"), setting["name"]


def test_capabilities_are_the_ones_the_tap_declares(about_json, definition):
    assert sorted(definition["capabilities"]) == sorted(about_json["capabilities"])
    assert {"state", "catalog", "discover", "about"} <= set(definition["capabilities"])


def test_the_two_ways_to_authenticate_are_setting_groups(about_json, definition):
    groups = definition["settings_group_validation"]
    assert groups == [["api_token"], ["email", "password"]]
    assert {name for group in groups for name in group} <= set(
        about_json["settings"]["properties"]
    )


def test_hub_definition_has_what_hub_lists(about_json):
    hub = hub_definition()
    assert hub["name"] == about_json["name"] == "tap-smartflo"
    assert hub["namespace"] == "tap_smartflo"
    assert HUB_YML.stem == hub["variant"]
    assert HUB_YML.parent.name == hub["name"]
    assert hub["executable"] == "tap-smartflo"
    project = (REPO / "pyproject.toml").read_text()
    assert f'name = "{hub["pip_url"]}"' in project
    assert f'{hub["executable"]} = "tap_smartflo.tap:TapSmartflo.cli"' in project
    for key in ("label", "description", "domain_url", "maintenance_status"):
        assert hub[key], key
    assert hub["keywords"]


def test_meltano_yml_matches_the_hub_definition_where_both_speak():
    extractor, hub = meltano_yml_extractor(), hub_definition()
    for key in ("name", "namespace", "executable", "label"):
        assert extractor[key] == hub[key], key
    assert by_name(extractor["settings"]) == by_name(hub["settings"])


def test_both_definitions_select_every_stream_but_the_recordings(about_json):
    # Meltano selects every stream unless told: call_recordings would then end
    # each run asking for recordings_archive_url.
    streams = [entry["tap_stream_id"] for entry in discovered_catalog()["streams"]]
    wanted = [f"{name}.*" for name in streams if name != "call_recordings"]
    assert "call_recordings" in streams
    assert meltano_yml_extractor()["select"] == wanted
    assert hub_definition()["select"] == wanted
