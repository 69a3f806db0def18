#!/usr/bin/env python3
"""Offline JSON schemas for kubeconform, in its file layout.

kubeconform validates each manifest against `<kind><KindSuffix>.json`, where the
suffix is `-<version>` for the core group and `-<first label of the group>-<version>`
otherwise (`deployment-apps-v1.json`, `imagepromotion-imagepromoter-v1alpha1.json`).
Nothing outside is reachable from CI, so the schemas are made here:

  kube_schemas.py openapi SWAGGER_JSON OUT_DIR   # Kubernetes' api/openapi-spec/swagger.json
  kube_schemas.py crds OUT_DIR CRD_YAML...       # CustomResourceDefinitions (ours, ServiceMonitor)

Every schema is standalone (the definitions it reaches travel in the same file) and
strict: an object with declared properties refuses any other property, which is what
`kubeconform -strict` relies on. Types the API server accepts in two forms
(IntOrString, Quantity, x-kubernetes-int-or-string) accept both.
"""

import json
import sys
from pathlib import Path

import yaml

DEFINITION = "#/definitions/"
# Definitions whose OpenAPI form (a string with a format) is narrower than what the
# API server accepts.
TWO_FORMS = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}
# Keys that only document; dropped to keep the files small.
DOCUMENTATION = {"description", "example", "externalDocs"}


def file_name(group: str, version: str, kind: str) -> str:
    suffix = f"-{group.split('.')[0].lower()}-{version.lower()}" if group else f"-{version.lower()}"
    return f"{kind.lower()}{suffix}.json"


# Keywords whose value is a map of name -> schema (the names are data, not keywords).
SCHEMA_MAPS = {"properties", "patternProperties", "definitions"}
# Keywords whose value is data, copied as it is.
DATA = {"enum", "default", "example", "x-kubernetes-validations", "x-kubernetes-group-version-kind"}


def strict(node):
    """A copy of a schema where every object with properties refuses others."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in DOCUMENTATION and isinstance(value, str):
            continue
        if key in DATA:
            out[key] = value
        elif key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: strict(schema) for name, schema in value.items()}
        else:
            out[key] = strict(value)
    if out.get("x-kubernetes-int-or-string") is True:
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and out.get("x-kubernetes-preserve-unknown-fields") is not True:
        out["additionalProperties"] = False
    return out


def references(node, found: set):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(DEFINITION):
            found.add(ref[len(DEFINITION):])
        for value in node.values():
            references(value, found)
    elif isinstance(node, list):
        for value in node:
            references(value, found)


def reachable(definitions: dict, root: str) -> dict:
    seen, todo = {}, [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in definitions:
            raise SystemExit(f"kube_schemas: {root} refers to {name}, which the OpenAPI document does not define")
        seen[name] = definitions[name]
        found: set = set()
        references(seen[name], found)
        todo.extend(found - seen.keys())
    return seen


def from_openapi(swagger_path: Path, out: Path) -> int:
    definitions = json.loads(swagger_path.read_text())["definitions"]
    definitions = {name: TWO_FORMS.get(name, strict(schema)) for name, schema in definitions.items()}
    written = 0
    for name, schema in sorted(definitions.items()):
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            path = out / file_name(gvk["group"], gvk["version"], gvk["kind"])
            if path.exists():
                continue  # meta kinds (DeleteOptions, WatchEvent) repeat per group; the first is as good
            document = {"$ref": DEFINITION + name, "definitions": reachable(definitions, name)}
            path.write_text(json.dumps(document, separators=(",", ":"), sort_keys=True))
            written += 1
    return written


def from_crds(out: Path, crd_files: list[Path]) -> int:
    written = 0
    for crd_file in crd_files:
        for crd in yaml.safe_load_all(crd_file.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                # The API server adds these to every custom resource; a CRD's schema may leave them out.
                properties = schema.setdefault("properties", {})
                properties.setdefault("apiVersion", {"type": "string"})
                properties.setdefault("kind", {"type": "string"})
                properties.setdefault("metadata", {"type": "object"})
                path = out / file_name(spec["group"], version["name"], spec["names"]["kind"])
                path.write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True))
                written += 1
    return written


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[0] == "openapi":
        out = Path(argv[2])
        out.mkdir(parents=True, exist_ok=True)
        count = from_openapi(Path(argv[1]), out)
    elif len(argv) >= 3 and argv[0] == "crds":
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        count = from_crds(out, [Path(p) for p in argv[2:]])
    else:
        raise SystemExit(__doc__)
    if count == 0:
        raise SystemExit("kube_schemas: no schema written: the input holds no kinds")
    print(f"kube_schemas: {count} schemas in {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
