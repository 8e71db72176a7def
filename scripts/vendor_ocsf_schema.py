"""Compile the part of the OCSF schema govern's OCSF export uses into tests/data/ocsf-1.8.0/.

The OCSF schema (https://github.com/ocsf/ocsf-schema, Apache-2.0) is split across files:
``dictionary.json`` (every attribute's type, caption, enum and sibling, and the data types),
``events/<category>/<class>.json`` with ``extends`` chains (``base_event`` -> ``iam`` ->
``account_change``), ``objects/*.json`` with ``extends`` (``user`` -> ``_entity`` -> ``object``)
and ``$include`` directives that pull in profiles. This script resolves all of it, as the OCSF
server does, for the classes govern emits and every object they reach, and writes one compiled,
self-contained ``schema.json`` that ``tests/ocsf_validate.py`` reads offline in CI.

Usage (the schema comes from a git clone of ocsf-schema, read at a tag, never a work tree):

    python scripts/vendor_ocsf_schema.py --git-dir PATH/ocsf-schema.git --ref 1.8.0

The source repository, tag and commit are recorded in the output. Resolution rules:

- a class's or object's attributes = its parent's (resolved) deep-merged with its own, after
  its own ``$include`` files are merged in; attributes of an included profile carry
  ``profile: NAME`` unless the including file sets ``profile`` itself (``null`` = always on);
- each attribute = the dictionary entry deep-merged with the class/object entry (so enums
  union: ``activity_id`` has the dictionary's 0/99 and the class's own values);
- ``class_uid`` = category uid * 1000 + class uid; ``type_uid`` enum = class_uid * 100 + each
  activity, captioned "Class: Activity", as the OCSF server derives it;
- ``@deprecated`` on an attribute, an object or an enum value is kept as ``deprecated``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# The classes govern's OCSF export emits (govern/services/exports.py).
CLASSES = ["account_change", "entity_management", "user_access"]
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "ocsf-1.8.0"


class Source:
    def __init__(self, git_dir: str, ref: str) -> None:
        self.git_dir, self.ref = git_dir, ref
        self.commit = self._git("rev-parse", f"{ref}^{{commit}}").strip()
        self.files = self._git("ls-tree", "-r", "--name-only", self.commit).split()

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *args], capture_output=True, text=True, check=True
        ).stdout

    def text(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")

    def json(self, path: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.text(path))
        return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Compiler:
    def __init__(self, source: Source) -> None:
        self.src = source
        dictionary = source.json("dictionary.json")
        self.dictionary: dict[str, Any] = dictionary["attributes"]
        self.types: dict[str, Any] = dictionary["types"]["attributes"]
        self.categories: dict[str, Any] = source.json("categories.json")["attributes"]
        self.event_files = {
            source.json(p)["name"]: p for p in source.files if p.startswith("events/") and p.endswith(".json")
        }
        self.objects: dict[str, Any] = {}

    def _own_attributes(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A file's attributes with its ``$include`` files merged underneath them."""
        own = dict(doc.get("attributes", {}))
        merged: dict[str, Any] = {}
        for path in own.pop("$include", []):
            included = self.src.json(path)
            profile = included.get("name") if included.get("meta") == "profile" else None
            for name, spec in included.get("attributes", {}).items():
                merged[name] = {**spec, "profile": profile} if profile else dict(spec)
        return deep_merge(merged, own)

    def _attribute(self, name: str, spec: dict[str, Any], owner: str) -> dict[str, Any]:
        if name not in self.dictionary:
            raise SystemExit(f"{owner}.{name} is not in the dictionary")
        full = deep_merge(self.dictionary[name], spec)
        out: dict[str, Any] = {"type": full["type"], "requirement": full.get("requirement", "optional")}
        if full.get("is_array"):
            out["is_array"] = True
        if full.get("sibling"):
            out["sibling"] = full["sibling"]
        if full.get("profile"):
            out["profile"] = full["profile"]
        if "@deprecated" in full:
            out["deprecated"] = full["@deprecated"].get("message", "deprecated")
        if "enum" in full:
            out["enum"] = {
                value: {"caption": item.get("caption", "")}
                | ({"deprecated": item["@deprecated"].get("message", "")} if "@deprecated" in item else {})
                for value, item in full["enum"].items()
            }
        return out

    def _resolve_event(self, name: str) -> dict[str, Any]:
        doc = self.src.json(self.event_files[name])
        attributes = self._own_attributes(doc)
        profiles = list(doc.get("profiles", []))
        category = doc.get("category")
        if "extends" in doc:
            parent = self._resolve_event(doc["extends"])
            attributes = deep_merge(parent["attributes"], attributes)
            profiles = sorted(set(parent["profiles"]) | set(profiles))
            category = category or parent["category"]
        return {"doc": doc, "attributes": attributes, "profiles": profiles, "category": category}

    def compile_class(self, name: str) -> dict[str, Any]:
        resolved = self._resolve_event(name)
        doc = resolved["doc"]
        category = self.categories[resolved["category"]]
        class_uid = category["uid"] * 1000 + doc["uid"]
        attributes = {n: self._attribute(n, s, name) for n, s in resolved["attributes"].items()}
        attributes["category_uid"]["enum"] = {str(category["uid"]): {"caption": category["caption"]}}
        attributes["class_uid"]["enum"] = {str(class_uid): {"caption": doc["caption"]}}
        attributes["type_uid"]["enum"] = {
            str(class_uid * 100 + int(value)): {"caption": f"{doc['caption']}: {item['caption']}"}
            for value, item in attributes["activity_id"]["enum"].items()
        }
        for spec in attributes.values():
            self._reach(spec["type"])
        return {
            "name": name,
            "caption": doc["caption"],
            "uid": class_uid,
            "category_uid": category["uid"],
            "profiles": resolved["profiles"],
            "attributes": dict(sorted(attributes.items())),
        } | ({"deprecated": doc["@deprecated"].get("message", "")} if "@deprecated" in doc else {})

    def _resolve_object(self, name: str) -> dict[str, Any]:
        doc = self.src.json(f"objects/{name}.json")
        attributes = self._own_attributes(doc)
        constraints = dict(doc.get("constraints", {}))
        if "extends" in doc:
            parent = self._resolve_object(doc["extends"])
            attributes = deep_merge(parent["attributes"], attributes)
            constraints = {**parent["constraints"], **constraints}
        return {"doc": doc, "attributes": attributes, "constraints": constraints}

    def _reach(self, type_name: str) -> None:
        """Compile object ``type_name`` and every object it reaches (data types are not objects)."""
        if type_name in self.types or type_name in self.objects:
            return
        if type_name == "object":
            # The root of the object hierarchy, used by the dictionary for free-form maps (unmapped).
            self.objects["object"] = {"name": "object", "open": True, "attributes": {}, "constraints": {}}
            return
        resolved = self._resolve_object(type_name)
        doc = resolved["doc"]
        compiled: dict[str, Any] = {
            "name": type_name,
            "caption": doc.get("caption", type_name),
            "attributes": {n: self._attribute(n, s, type_name) for n, s in sorted(resolved["attributes"].items())},
            "constraints": resolved["constraints"],
        }
        if "@deprecated" in doc:
            compiled["deprecated"] = doc["@deprecated"].get("message", "")
        if type_name == "observable":
            # The server derives this enum from every type, object and attribute marked
            # ``observable`` (extensions included): not compiled here, so never checked as valid.
            compiled["attributes"]["type_id"]["uncompiled"] = "the observable type_id enum is derived, not vendored"
        self.objects[type_name] = compiled
        for spec in compiled["attributes"].values():
            self._reach(spec["type"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", required=True, help="a git clone (bare or not) of ocsf/ocsf-schema")
    parser.add_argument("--ref", default="1.8.0", help="the tag to compile (default 1.8.0)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    source = Source(args.git_dir, args.ref)
    version = source.json("version.json")["version"]
    compiler = Compiler(source)
    classes = {name: compiler.compile_class(name) for name in CLASSES}
    types = {
        name: {k: v for k, v in spec.items() if k in ("type", "regex", "max_len", "range", "values")}
        for name, spec in compiler.types.items()
    }
    schema = {
        "source": {
            "repository": "https://github.com/ocsf/ocsf-schema",
            "tag": args.ref,
            "commit": source.commit,
            "license": "Apache-2.0 (see LICENSE and NOTICE in this folder)",
            "generated_by": "scripts/vendor_ocsf_schema.py",
        },
        "version": version,
        "types": types,
        "classes": {str(c["uid"]): c for c in classes.values()},
        "objects": dict(sorted(compiler.objects.items())),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "schema.json").write_text(json.dumps(schema, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    (args.out / "LICENSE").write_text(source.text("LICENSE"), encoding="utf-8")
    (args.out / "NOTICE").write_text(source.text("NOTICE"), encoding="utf-8")
    print(f"OCSF {version} @ {source.commit}: {len(classes)} classes, {len(compiler.objects)} objects -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
