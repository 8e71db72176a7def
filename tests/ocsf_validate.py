"""An offline validator of OCSF events against the vendored, compiled OCSF 1.8.0 schema.

A test helper, not product code. The schema is ``tests/data/ocsf-1.8.0/schema.json``, compiled
from the real ocsf-schema repository by ``scripts/vendor_ocsf_schema.py`` (extends chains,
``$include`` profiles and the dictionary resolved). The rules follow the OCSF server's event
validation, every finding being an error here (the server only warns on some):

- ``class_uid`` known, ``category_uid`` its category, ``type_uid = class_uid * 100 + activity_id``
  and in the class's enum, ``metadata.version`` the schema's version;
- every ``required`` attribute present, in the event and in each object (profile attributes only
  when the profile is declared in ``metadata.profiles``, where they are otherwise unknown);
- no attribute unknown to the class or object, recursively; no deprecated attribute, object or
  enum value;
- values of their dictionary type (``string_t``, ``integer_t`` (32-bit), ``long_t``,
  ``timestamp_t`` (milliseconds since the epoch), ``boolean_t``, ``float_t``, ``json_t``, and the
  derived types' regex, maximum length, range), arrays where ``is_array``;
- enum values in their enum; an enum's sibling (``activity_name``, ``severity``, ``status``,
  ``type_name``, ``type``…) equal to the value's caption, except for 99 ("Other"), where the
  sibling must carry the source's own name (present, not "Other");
- object constraints ``at_least_one`` and ``just_one``.

Not checked: the ``datetime`` profile's derived ``*_dt`` attributes (reported as unknown),
extensions, and ``observables[].type_id``, whose enum the server derives from the whole schema
(reported as an error, so an event carrying observables never passes unchecked).
"""

import json
import re
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).parent / "data" / "ocsf-1.8.0" / "schema.json"
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# Milliseconds since the epoch between 2001-09-09 and 2286-11-20: a value in seconds (about
# 1.7e9 today) or in microseconds (1.7e15) falls outside.
TIMESTAMP_MS = (10**12, 10**13)


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


class Validator:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.types: dict[str, Any] = schema["types"]
        self.objects: dict[str, Any] = schema["objects"]
        self.classes: dict[str, Any] = schema["classes"]

    def validate(self, event: Any) -> list[str]:
        """Every error found in one event (an empty list: the event is valid OCSF)."""
        errors: list[str] = []
        if not isinstance(event, dict):
            return [f"$: an event must be a JSON object, not {type(event).__name__}"]
        cls = self.classes.get(str(event.get("class_uid")))
        if cls is None:
            return [f"class_uid: {event.get('class_uid')!r} is not a class of this schema"]
        if "deprecated" in cls:
            errors.append(f"class_uid: class {cls['name']} is deprecated: {cls['deprecated']}")
        metadata = event.get("metadata")
        profiles: set[str] = set()
        if isinstance(metadata, dict):
            declared = metadata.get("profiles", [])
            profiles = {p for p in declared if isinstance(p, str)} if isinstance(declared, list) else set()
            if metadata.get("version") != self.schema["version"]:
                errors.append(f"metadata.version: {metadata.get('version')!r}, expected {self.schema['version']!r}")
        for profile in sorted(profiles - set(cls["profiles"])):
            errors.append(f"metadata.profiles: {profile!r} is not a profile of class {cls['name']}")
        activity = event.get("activity_id")
        if _is_int(activity) and _is_int(event.get("type_uid")) and event["type_uid"] != cls["uid"] * 100 + activity:
            errors.append(
                f"type_uid: {event['type_uid']} != class_uid * 100 + activity_id ({cls['uid'] * 100 + activity})"
            )
        self._members(event, cls["attributes"], "", profiles, errors)
        return errors

    def _members(
        self, value: dict[str, Any], attributes: dict[str, Any], path: str, profiles: set[str], errors: list[str]
    ) -> None:
        for name, spec in attributes.items():
            active = spec.get("profile") is None or spec["profile"] in profiles
            if active and spec["requirement"] == "required" and name not in value:
                errors.append(f"{path}{name}: required attribute missing")
        for name, item in value.items():
            where = f"{path}{name}"
            spec = attributes.get(name)
            if spec is None:
                errors.append(f"{where}: unknown attribute")
                continue
            if spec.get("profile") is not None and spec["profile"] not in profiles:
                errors.append(f"{where}: attribute of profile {spec['profile']!r}, not declared in metadata.profiles")
                continue
            if "deprecated" in spec:
                errors.append(f"{where}: deprecated attribute: {spec['deprecated']}")
            if "uncompiled" in spec:
                errors.append(f"{where}: cannot be validated offline: {spec['uncompiled']}")
            if spec.get("is_array"):
                if not isinstance(item, list):
                    errors.append(f"{where}: expected an array, got {type(item).__name__}")
                    continue
                for index, element in enumerate(item):
                    self._value(element, spec, f"{where}[{index}]", profiles, errors)
            else:
                self._value(item, spec, where, profiles, errors)
                self._sibling(value, name, spec, path, errors)

    def _sibling(self, value: dict[str, Any], name: str, spec: dict[str, Any], path: str, errors: list[str]) -> None:
        enum, sibling = spec.get("enum"), spec.get("sibling")
        item = value[name]
        if not enum or not sibling or not _is_int(item) or str(item) not in enum:
            return
        caption = enum[str(item)]["caption"]
        given = value.get(sibling)
        if item == 99:
            if not isinstance(given, str) or not given or given == "Other":
                errors.append(f"{path}{sibling}: {name} is 99 (Other), so {sibling} must carry the source's own name")
        elif sibling in value and given != caption:
            errors.append(f"{path}{sibling}: {given!r} does not match the caption of {name} {item} ({caption!r})")

    def _value(self, item: Any, spec: dict[str, Any], where: str, profiles: set[str], errors: list[str]) -> None:
        type_name = spec["type"]
        if type_name in self.objects:
            self._object(item, type_name, where, profiles, errors)
            return
        self._scalar(item, type_name, where, errors)
        enum = spec.get("enum")
        if enum is not None and _is_int(item):
            entry = enum.get(str(item))
            if entry is None:
                errors.append(f"{where}: {item} is not in the enum ({', '.join(sorted(enum, key=int))})")
            elif "deprecated" in entry:
                errors.append(f"{where}: enum value {item} is deprecated: {entry['deprecated']}")

    def _object(self, item: Any, type_name: str, where: str, profiles: set[str], errors: list[str]) -> None:
        if not isinstance(item, dict):
            errors.append(f"{where}: expected object {type_name}, got {type(item).__name__}")
            return
        obj = self.objects[type_name]
        if obj.get("open"):
            return
        if "deprecated" in obj:
            errors.append(f"{where}: object {type_name} is deprecated: {obj['deprecated']}")
        self._members(item, obj["attributes"], f"{where}.", profiles, errors)
        constraints = obj.get("constraints", {})
        if "at_least_one" in constraints and not any(k in item for k in constraints["at_least_one"]):
            errors.append(f"{where}: {type_name} needs at least one of {', '.join(constraints['at_least_one'])}")
        if "just_one" in constraints and sum(k in item for k in constraints["just_one"]) != 1:
            errors.append(f"{where}: {type_name} needs exactly one of {', '.join(constraints['just_one'])}")

    def _scalar(self, item: Any, type_name: str, where: str, errors: list[str]) -> None:
        if type_name not in self.types:
            errors.append(f"{where}: type {type_name} is not vendored (re-run scripts/vendor_ocsf_schema.py)")
            return
        chain = [type_name]
        while "type" in self.types[chain[-1]]:
            chain.append(self.types[chain[-1]]["type"])
        base = chain[-1]
        ok = {
            "string_t": isinstance(item, str),
            "integer_t": _is_int(item) and INT32[0] <= item <= INT32[1],
            "long_t": _is_int(item) and INT64[0] <= item <= INT64[1],
            "float_t": isinstance(item, int | float) and not isinstance(item, bool),
            "boolean_t": isinstance(item, bool),
            "json_t": True,
        }.get(base)
        if ok is None:
            errors.append(f"{where}: unknown base type {base}")
            return
        if not ok:
            errors.append(f"{where}: {item!r} is not a valid {type_name} ({base})")
            return
        if "timestamp_t" in chain and not TIMESTAMP_MS[0] <= item < TIMESTAMP_MS[1]:
            errors.append(f"{where}: {item} does not look like milliseconds since the epoch (timestamp_t)")
        for name in chain:
            rules = self.types[name]
            if "regex" in rules and isinstance(item, str) and re.search(rules["regex"], item) is None:
                errors.append(f"{where}: {item!r} does not match the {name} pattern")
            if "max_len" in rules and isinstance(item, str) and len(item) > rules["max_len"]:
                errors.append(f"{where}: longer than {rules['max_len']} ({name})")
            if "range" in rules and _is_int(item) and not rules["range"][0] <= item <= rules["range"][1]:
                errors.append(f"{where}: {item} out of range {rules['range']} ({name})")
            if "values" in rules and item not in rules["values"]:
                errors.append(f"{where}: {item!r} not one of {rules['values']} ({name})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
