#!/usr/bin/env python3
"""The chart's values table, generated from values.yaml so the README cannot drift.

Each value in values.yaml carries a `# -- description` comment on the line(s) just
above its key. This script builds the table (key, type, default, description) and

  values_doc.py CHART --write   # puts it between the README's markers
  values_doc.py CHART --check   # fails when the README's table differs, when a value
                                # has no description, or when values.yaml and
                                # values.schema.json do not name the same keys
"""

import json
import re
import sys
from pathlib import Path

import yaml

START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9_]*):")
DOC = re.compile(r"^ *# -- ?(?P<text>.*)$")


def documented_keys(values_text: str) -> dict[str, str]:
    """Dotted key -> description, for every key preceded by a `# --` comment."""
    docs, path, pending = {}, [], []
    for line in values_text.splitlines():
        doc = DOC.match(line)
        if doc:
            pending.append(doc.group("text").strip())
            continue
        match = KEY.match(line)
        if not match:
            if not line.strip().startswith("#"):
                pending = []
            continue
        depth = len(match.group("indent")) // 2
        path = path[:depth] + [match.group("key")]
        if pending:
            docs[".".join(path)] = " ".join(pending)
        pending = []
    return docs


def leaves(values: dict, prefix: str = "") -> list[str]:
    """Dotted keys of every value that is not a non-empty map."""
    out = []
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += [dotted] + leaves(value, dotted + ".")
        else:
            out.append(dotted)
    return out


def lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node[part]
    return node


def type_of(value) -> str:
    return {bool: "bool", int: "int", float: "number", str: "string", list: "list", dict: "object"}.get(type(value), "null")


def default_of(value) -> str:
    text = json.dumps(value, separators=(", ", ": "))
    return f"`{text}`".replace("|", "\\|")


def table(values: dict, docs: dict[str, str]) -> str:
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for key, description in docs.items():
        value = lookup(values, key)
        escaped = description.replace("|", "\\|")
        rows.append(f"| `{key}` | {type_of(value)} | {default_of(value)} | {escaped} |")
    return "\n".join(rows)


def schema_keys(schema: dict, docs: dict[str, str], prefix: str = "") -> set[str]:
    """Dotted keys the schema declares, down through the groups of values (maps
    whose keys are documented one by one, such as `image`)."""
    out = set()
    for key, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{key}"
        out.add(dotted)
        if dotted not in docs and "properties" in sub:
            out |= schema_keys(sub, docs, dotted + ".")
    return out


def problems(chart: Path, values: dict, docs: dict[str, str]) -> list[str]:
    found = []
    keys = leaves(values)
    for key in keys:
        covered = any(key == doc or key.startswith(doc + ".") for doc in docs)
        # A map of documented values (image, crds, …) needs no line of its own.
        is_group = isinstance(lookup(values, key), dict) and lookup(values, key) and key not in docs
        if not covered and not is_group:
            found.append(f"values.yaml: {key} has no '# --' description")
    schema = json.loads((chart / "values.schema.json").read_text())
    declared = schema_keys(schema, docs)
    top_level_and_groups = {k for k in keys if not any(k.startswith(d + ".") for d in docs if d != k)}
    for key in sorted(top_level_and_groups - declared):
        found.append(f"values.yaml: {key} is not declared in values.schema.json")
    for key in sorted(declared - set(keys)):
        found.append(f"values.schema.json: {key} has no default in values.yaml")
    return found


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in ("--write", "--check"):
        raise SystemExit(__doc__)
    chart = Path(argv[0])
    text = (chart / "values.yaml").read_text()
    values, docs = yaml.safe_load(text), documented_keys(text)
    readme_path = chart / "README.md"
    readme = readme_path.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"values_doc: {readme_path} lacks the markers {START} … {END}")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    wanted = f"{head}{START}\n{table(values, docs)}\n{END}{tail}"
    if argv[1] == "--write":
        readme_path.write_text(wanted)
        print(f"values_doc: wrote {len(docs)} values into {readme_path}")
        return
    found = problems(chart, values, docs)
    if readme != wanted:
        found.append(f"{readme_path}: the values table is out of date: run 'make chart-sync' and commit")
    if found:
        raise SystemExit("\n".join(found))
    print(f"values_doc: {len(docs)} values documented, README and schema agree")


if __name__ == "__main__":
    main(sys.argv[1:])
