#!/usr/bin/env python3
"""Publishes a release of image-promoter that users install without a checkout.

  hack/release/release.py --version X.Y.Z --registry HOST/PATH   (`make release`)

In order, each step stopping the release when it fails:
1. the operator's image (hack/image/build.py, the release binary) pushed to
   HOST/PATH/image-promoter:X.Y.Z;
2. the chart packaged with version and appVersion X.Y.Z and its values pointing
   at that image by digest, pushed with `helm push` to oci://HOST/PATH/charts
   (so HOST/PATH/charts/image-promoter:X.Y.Z);
3. both signed with cosign and the key in COSIGN_KEY (COSIGN_PASSWORD unlocks
   it); without a key nothing is built or pushed;
4. an SBOM of the binary's crates (CycloneDX 1.5 JSON from Cargo.lock, written
   by cargo-cyclonedx, which `make tools` installs; no dev- or build-only
   crates) attached to the image as a signed cosign attestation of type
   `cyclonedx`.

Signatures are not uploaded to a transparency log (verify with
`--insecure-ignore-tlog=true`). Registry credentials come from DOCKER_CONFIG
(cosign) and helm's registry config (`helm registry login`); a registry of the
local test world (target/testenv/env) is used with the world's own, as
`make image` does. The files are left in target/release-artifacts/X.Y.Z/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/image-promoter"
sys.path.insert(0, str(ROOT / "hack/image"))
import build  # noqa: E402  (hack/image/build.py: the image, and the world's access)

SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


class ReleaseError(Exception):
    pass


def cargo_version() -> str:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


def preflight(version: str, env: dict[str, str]) -> Path:
    """What must hold before anything is built: a version that is Cargo.toml's and
    a signing key. Returns the key's path."""
    if not SEMVER.match(version):
        raise ReleaseError(f"VERSION={version!r} is not a SemVer version (X.Y.Z): helm refuses it")
    if version != cargo_version():
        raise ReleaseError(
            f"VERSION={version} but Cargo.toml says {cargo_version()}: the binary reports Cargo.toml's "
            "version, so bump it there first (and commit)"
        )
    key = env.get("COSIGN_KEY", "")
    if not key:
        raise ReleaseError(
            "COSIGN_KEY is not set: a release is signed, so nothing was built or pushed. Make a key pair "
            "with `cosign generate-key-pair` and run with COSIGN_KEY=cosign.key COSIGN_PASSWORD=…"
        )
    if not Path(key).is_file():
        raise ReleaseError(f"COSIGN_KEY={key} is not a file: nothing was built or pushed")
    if "COSIGN_PASSWORD" not in env:
        raise ReleaseError("COSIGN_PASSWORD is not set (empty for a key without a password): cosign would ask for it")
    return Path(key)


def run(args: list[str], env: dict[str, str], what: str) -> str:
    """Runs a tool; its standard output, or an error with its standard error."""
    result = subprocess.run(args, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise ReleaseError(f"{what} failed ({' '.join(args[:2])}): {result.stderr.strip()[-2000:]}")
    return result.stdout + result.stderr


def push_image(registry: str, version: str, out: Path, env: dict[str, str]) -> str:
    """The image, built and pushed by hack/image/build.py; its digest."""
    printed = run(
        [sys.executable, str(ROOT / "hack/image/build.py"), "--out", str(out / "image"),
         "--tag", version, "--push", f"{registry}/image-promoter"],
        env, "building and pushing the image",
    )
    return printed.split()[0]


def values_by_digest(values: str, repository: str, digest: str) -> str:
    """The chart's values.yaml with image.repository and image.digest set, the
    comments kept (they are what `helm show values` shows)."""
    block = re.search(r"^image:\n((?:[ #].*\n|\n)*)", values, re.MULTILINE)
    if block is None:
        raise ReleaseError("charts/image-promoter/values.yaml has no top-level `image:` block")
    text = block.group(1)
    text, repositories = re.subn(r"^  repository: .*$", f"  repository: {repository}", text, count=1, flags=re.M)
    text, digests = re.subn(r"^  digest: .*$", f'  digest: "{digest}"', text, count=1, flags=re.M)
    if (repositories, digests) != (1, 1):
        raise ReleaseError("values.yaml's `image:` block lacks `repository:` or `digest:`")
    return values[: block.start(1)] + text + values[block.end(1):]


def package_chart(registry: str, version: str, digest: str, out: Path, env: dict[str, str]) -> Path:
    """The chart with that version, pointing at the image by digest, as a .tgz."""
    with tempfile.TemporaryDirectory() as folder:
        chart = Path(folder) / "image-promoter"
        shutil.copytree(CHART, chart)
        values = chart / "values.yaml"
        values.write_text(values_by_digest(values.read_text(), f"{registry}/image-promoter", digest))
        run(["helm", "package", str(chart), "--version", version, "--app-version", version,
             "--destination", str(out)], env, "helm package")
    package = out / f"image-promoter-{version}.tgz"
    rendered = run(["helm", "template", "image-promoter", str(package)], env, "helm template (the packaged chart)")
    if f"image: {registry}/image-promoter@{digest}" not in rendered and \
            f'image: "{registry}/image-promoter@{digest}"' not in rendered:
        raise ReleaseError(f"the packaged chart does not run {registry}/image-promoter@{digest}")
    return package


def push_chart(package: Path, registry: str, env: dict[str, str]) -> str:
    """`helm push` to oci://REGISTRY/charts; the chart's manifest digest."""
    printed = run(["helm", "push", str(package), f"oci://{registry}/charts"], env, "helm push")
    found = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", printed, re.MULTILINE)
    if found is None:
        raise ReleaseError(f"helm push printed no digest: {printed.strip()}")
    return found.group(1)


def sbom(out: Path, env: dict[str, str]) -> Path:
    """CycloneDX JSON of the crates the binary is built from: the dependencies
    Cargo.lock resolves for the host, without dev- and build-only crates."""
    run(["cargo", "cyclonedx", "--format", "json", "--spec-version", "1.5", "--describe", "binaries",
         "--no-build-deps", "--manifest-path", str(ROOT / "Cargo.toml")],
        env, "cargo cyclonedx (installed by `make tools`)")
    target = out / "sbom.cdx.json"
    for written in ROOT.glob("*_bin.cdx.json"):  # one per binary of the package, beside Cargo.toml
        if written.name == "image-promoter_bin.cdx.json":
            shutil.move(written, target)
        else:
            written.unlink()
    if not target.is_file():
        raise ReleaseError("cargo cyclonedx wrote no image-promoter_bin.cdx.json beside Cargo.toml")
    if not json.loads(target.read_text()).get("components"):
        raise ReleaseError(f"{target} names no crates")
    return target


def sign(reference: str, key: Path, env: dict[str, str]) -> None:
    run(["cosign", "sign", "--key", str(key), "--tlog-upload=false", "--yes", reference], env, f"cosign sign {reference}")


def attest(reference: str, predicate: Path, key: Path, env: dict[str, str]) -> None:
    run(["cosign", "attest", "--key", str(key), "--type", "cyclonedx", "--predicate", str(predicate),
         "--tlog-upload=false", "--yes", reference], env, f"cosign attest {reference}")


def access(registry: str) -> dict[str, str]:
    """The environment the tools run with: the caller's, and for a registry of
    the test world its docker config (for helm too) and CA."""
    env = dict(os.environ)
    world = build.world_access(registry)
    env.update(world)
    if world:
        env["HELM_REGISTRY_CONFIG"] = str(Path(world["DOCKER_CONFIG"]) / "config.json")
    return env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=cargo_version(), help="X.Y.Z [default: Cargo.toml's]")
    parser.add_argument("--registry", required=True, help="HOST/PATH: the image goes to HOST/PATH/image-promoter, the chart to HOST/PATH/charts")
    parser.add_argument("--preflight", action="store_true", help="only check the version and the key (before the release build)")
    args = parser.parse_args(argv)
    registry = args.registry.removeprefix("oci://").rstrip("/")
    try:
        key = preflight(args.version, dict(os.environ))
        if args.preflight:
            return 0
        env = access(registry)
        out = ROOT / "target/release-artifacts" / args.version
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        image = f"{registry}/image-promoter@{push_image(registry, args.version, out, env)}"
        say(f"pushed the image {image}")
        package = package_chart(registry, args.version, image.rsplit("@", 1)[1], out, env)
        chart = f"{registry}/charts/image-promoter@{push_chart(package, registry, env)}"
        say(f"pushed the chart {chart} (oci://{registry}/charts/image-promoter --version {args.version})")
        sign(image, key, env)
        sign(chart, key, env)
        say("signed the image and the chart")
        attest(image, sbom(out, env), key, env)
        say(f"attached the SBOM ({out / 'sbom.cdx.json'}) to the image as a cyclonedx attestation")
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"version": args.version, "image": image, "chart": chart}))
    return 0


def say(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
