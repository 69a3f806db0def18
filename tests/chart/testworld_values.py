#!/usr/bin/env python3
"""Fills tests/chart/testworld-values.yaml from the test world's environment.

  testworld_values.py values    # the values file, every ${NAME} replaced
  testworld_values.py objects   # the Secret and ConfigMap those values name

Run it with target/testenv/env sourced and IMAGE set to the operator's image
(`host/repository:tag`, as `make image` takes it). A placeholder whose variable is
unset is an error, never an empty string. The objects hold the world's stand-in
credentials (the docker config, the AWS keys moto accepts) and the test CA.
"""

import base64
import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLACEHOLDER = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def environment_from(variables: dict[str, str]) -> dict[str, str]:
    """The variables, with IMAGE_REPOSITORY and IMAGE_TAG taken from IMAGE."""
    env = dict(variables)
    image = env.get("IMAGE")
    if image:
        # host[:port]/path:tag — the tag follows the last ':' after the last '/'.
        slash = image.rfind("/")
        colon = image.rfind(":")
        if colon <= slash:
            raise SystemExit(f"testworld_values: IMAGE={image!r} has no tag: use host/repository:tag")
        env.setdefault("IMAGE_REPOSITORY", image[:colon])
        env.setdefault("IMAGE_TAG", image[colon + 1:])
    return env


def fill(text: str, env: dict[str, str]) -> str:
    missing = sorted({name for name in PLACEHOLDER.findall(text) if not env.get(name)})
    if missing:
        raise SystemExit(
            "testworld_values: unset: " + ", ".join(missing) + " (source target/testenv/env and set IMAGE=host/repository:tag)"
        )
    return PLACEHOLDER.sub(lambda m: env[m.group(1)], text)


def required(env: dict[str, str], name: str) -> str:
    if not env.get(name):
        raise SystemExit(f"testworld_values: {name} is unset (source target/testenv/env)")
    return env[name]


def objects(env: dict[str, str]) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    docker = Path(required(env, "PROMOTER_TEST_DOCKER_CONFIG")) / "config.json"
    ca = Path(required(env, "PROMOTER_TEST_CA"))
    manifests = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "image-promoter-registries"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": b64(docker.read_bytes())},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "image-promoter-aws"},
            "type": "Opaque",
            "data": {name: b64(required(env, name).encode()) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "image-promoter-test-ca"},
            "data": {"ca.crt": ca.read_text()},
        },
    ]
    # JSON is YAML; one document per object.
    return "\n---\n".join(json.dumps(m, indent=2) for m in manifests) + "\n"


def main(argv: list[str]) -> None:
    env = environment_from(dict(os.environ))
    if argv == ["values"]:
        sys.stdout.write(fill((HERE / "testworld-values.yaml").read_text(), env))
    elif argv == ["objects"]:
        sys.stdout.write(objects(env))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
