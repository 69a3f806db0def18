#!/usr/bin/env python3
"""Prints the argocd-cm keys that install image-promoter's health checks and resource
actions, as a JSON merge patch for `kubectl patch configmap argocd-cm --type merge`.

    python3 integrations/argocd/argocd-cm.py \\
      | kubectl -n argocd patch configmap argocd-cm --type merge --patch-file /dev/stdin

For each kind under resource_customizations/<group>/<Kind>/ it writes
`resource.customizations.health.<group>_<Kind>` (the health.lua) and, when the kind has
actions, `resource.customizations.actions.<group>_<Kind>`: a YAML document with the
discovery.lua and one `definitions` entry per actions/<name>/action.lua, the format
Argo CD reads from argocd-cm. Only the Python standard library is used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CUSTOMIZATIONS = Path(__file__).resolve().parent / "resource_customizations"


def block(text: str, indent: str) -> str:
    """A YAML literal block (`|`) holding `text` exactly, lines indented by `indent`."""
    lines = text.rstrip("\n").split("\n")
    return "|\n" + "".join(f"{indent}{line}\n" if line else "\n" for line in lines)


def actions_document(actions: Path) -> str:
    document = "discovery.lua: " + block((actions / "discovery.lua").read_text(), "  ")
    document += "definitions:\n"
    for script in sorted(actions.glob("*/action.lua")):
        document += f"- name: {script.parent.name}\n  action.lua: " + block(script.read_text(), "    ")
    return document


def data() -> dict[str, str]:
    keys: dict[str, str] = {}
    for kind in sorted(p for p in CUSTOMIZATIONS.glob("*/*") if p.is_dir()):
        key = f"{kind.parent.name}_{kind.name}"
        keys[f"resource.customizations.health.{key}"] = (kind / "health.lua").read_text()
        if (kind / "actions" / "discovery.lua").exists():
            keys[f"resource.customizations.actions.{key}"] = actions_document(kind / "actions")
    if not keys:
        raise SystemExit(f"no resource customizations under {CUSTOMIZATIONS}")
    return keys


if __name__ == "__main__":
    json.dump({"data": data()}, sys.stdout, indent=2)
    sys.stdout.write("\n")
