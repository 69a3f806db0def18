#!/usr/bin/env python3
"""Builds the operator's OCI image without Docker: one layer, written as an OCI
image layout (target/image/ by default) that `crane push` or any OCI tool can
read.

The layer holds what the binary needs and nothing else:
- /usr/local/bin/image-promoter, the release binary;
- the shared libraries `ldd` says it loads, at the paths `ldd` prints, and the
  dynamic loader at the path written in the binary (none for a static binary);
- /etc/ssl/certs/ca-certificates.crt, the host's CA bundle;
- /etc/passwd, /etc/group and /etc/nsswitch.conf with the user and group
  `nonroot` (65532), its home, and /tmp, as distroless images have them.
The config runs `image-promoter run` as 65532 and carries the OCI labels
(source, version, revision, created), which the manifest repeats as annotations.

Reproducible: the same inputs give the same bytes, so the same digest. Entries
are sorted, every mtime is SOURCE_DATE_EPOCH (the commit time by default),
owners are numeric, there are no extended attributes, gzip writes neither a
time nor a file name, and JSON is written with sorted keys and no spaces. The
inputs are the binary, the host's libraries and CA bundle (Debian packages),
Python's zlib (its compression level and version decide the gzip bytes), and
the labels. See README.md ("The operator's image").

Usage: hack/image/build.py [--binary $CARGO_TARGET_DIR/release/image-promoter] [--out target/image]
                           [--push host/repo[:tag]]
Prints the manifest digest on standard output; with --push, pushes the layout
with `crane` (registry credentials from DOCKER_CONFIG, CAs from SSL_CERT_FILE or
the system's) and checks that the registry holds that digest. A reference to one
of the local test world's registries (target/testenv/env) is pushed with the
world's docker config and CA instead.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where cargo put the release binary (.ci/run points CARGO_TARGET_DIR elsewhere).
RELEASE_BINARY = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release/image-promoter"
BINARY_PATH = "usr/local/bin/image-promoter"
CA_BUNDLE_PATH = "etc/ssl/certs/ca-certificates.crt"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
NONROOT = 65532
# Python's zlib at this level; changing it changes every digest.
GZIP_LEVEL = 6

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"

PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnonroot:x:{NONROOT}:\n"
NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"

# ELF e_machine → OCI architecture.
ELF_ARCHITECTURES = {62: "amd64", 183: "arm64", 40: "arm", 243: "riscv64", 21: "ppc64le", 22: "s390x"}


class BuildError(Exception):
    """The image cannot be built as asked; the message says what to do."""


@dataclass(frozen=True)
class Entry:
    """One entry of the layer: a directory or a file."""

    path: str
    kind: str  # "dir" or "file"
    mode: int
    uid: int = 0
    gid: int = 0
    data: bytes = b""


@dataclass(frozen=True)
class Labels:
    source: str | None
    version: str
    revision: str
    created_epoch: int

    def created(self) -> str:
        moment = datetime.datetime.fromtimestamp(self.created_epoch, datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def as_dict(self, description: str, licenses: str) -> dict[str, str]:
        labels = {
            "org.opencontainers.image.title": "image-promoter",
            "org.opencontainers.image.description": description,
            "org.opencontainers.image.licenses": licenses,
            "org.opencontainers.image.version": self.version,
            "org.opencontainers.image.revision": self.revision,
            "org.opencontainers.image.created": self.created(),
        }
        if self.source:
            labels["org.opencontainers.image.source"] = self.source
        return labels


def shared_libraries(binary: Path) -> list[tuple[str, Path]]:
    """(path in the image, file on the host) for every library `ldd` lists and
    the loader; empty for a static binary."""
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    text = result.stdout + result.stderr
    if "not a dynamic executable" in text or "statically linked" in text:
        return []
    if result.returncode != 0:
        raise BuildError(f"ldd {binary} failed: {text.strip()}")
    found: list[tuple[str, Path]] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            raise BuildError(f"ldd {binary}: {line}: install the library on the build host")
        linked = re.match(r"^\S+ => (/\S+) \(0x[0-9a-f]+\)$", line)
        loader = re.match(r"^(/\S+) \(0x[0-9a-f]+\)$", line)
        path = linked.group(1) if linked else loader.group(1) if loader else None
        if path is None:
            continue  # linux-vdso.so.1: provided by the kernel
        found.append((os.path.normpath(path).lstrip("/"), Path(os.path.realpath(path))))
    return sorted(set(found))


def elf_architecture(binary: Path) -> str:
    header = binary.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        raise BuildError(f"{binary} is not an ELF executable")
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    if machine not in ELF_ARCHITECTURES:
        raise BuildError(f"{binary}: unknown ELF machine {machine}")
    return ELF_ARCHITECTURES[machine]


def host_ca_bundle() -> Path:
    for candidate in HOST_CA_BUNDLES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise BuildError(
        "no CA bundle on this host (looked for " + ", ".join(HOST_CA_BUNDLES) + "): "
        "install ca-certificates (apt-get install ca-certificates) or pass --ca-bundle"
    )


def filesystem(binary: Path, ca_bundle: Path, libraries: list[tuple[str, Path]]) -> list[Entry]:
    """Every entry of the layer, parents included, sorted by path."""
    files = [
        Entry(BINARY_PATH, "file", 0o755, data=binary.read_bytes()),
        Entry(CA_BUNDLE_PATH, "file", 0o644, data=ca_bundle.read_bytes()),
        Entry("etc/passwd", "file", 0o644, data=PASSWD.encode()),
        Entry("etc/group", "file", 0o644, data=GROUP.encode()),
        Entry("etc/nsswitch.conf", "file", 0o644, data=NSSWITCH.encode()),
        Entry("home/nonroot", "dir", 0o700, NONROOT, NONROOT),
        Entry("tmp", "dir", 0o1777),
    ]
    files += [Entry(path, "file", 0o755, data=host.read_bytes()) for path, host in libraries]
    entries = {entry.path: entry for entry in files}
    for entry in files:
        parent = os.path.dirname(entry.path)
        while parent and parent not in entries:
            entries[parent] = Entry(parent, "dir", 0o755)
            parent = os.path.dirname(parent)
    return [entries[path] for path in sorted(entries)]


def layer_tar(entries: list[Entry], mtime: int) -> bytes:
    """The uncompressed layer: ustar, numeric owners, one mtime, sorted."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path + ("/" if entry.kind == "dir" else ""))
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, mtime
            info.uname = info.gname = ""
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
    return out.getvalue()


def gzipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL, mtime=0) as stream:
        stream.write(data)
    return out.getvalue()


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


@dataclass(frozen=True)
class Image:
    manifest: bytes
    config: bytes
    layer: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def build(binary: Path, labels: Labels, *, ca_bundle: Path | None = None) -> Image:
    """The image's three blobs; a pure function of its inputs."""
    package = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    entries = filesystem(binary, ca_bundle or host_ca_bundle(), shared_libraries(binary))
    tar = layer_tar(entries, labels.created_epoch)
    layer = gzipped(tar)
    label_values = labels.as_dict(package["description"], package["license"])
    config = canonical_json(
        {
            "architecture": elf_architecture(binary),
            "os": "linux",
            "created": labels.created(),
            "config": {
                "User": str(NONROOT),
                "Entrypoint": ["/" + BINARY_PATH],
                "Cmd": ["run"],
                "Env": [
                    "PATH=/usr/local/bin:/usr/bin:/bin",
                    "SSL_CERT_FILE=/" + CA_BUNDLE_PATH,
                ],
                "WorkingDir": "/home/nonroot",
                "Labels": label_values,
            },
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
            "history": [{"created": labels.created(), "created_by": "hack/image/build.py"}],
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": descriptor(MEDIA_CONFIG, config),
            "layers": [descriptor(MEDIA_LAYER, layer)],
            "annotations": label_values,
        }
    )
    return Image(manifest=manifest, config=config, layer=layer)


def write_layout(image: Image, out: Path, tag: str) -> None:
    """An OCI image layout holding the image under `tag`; `out` is replaced."""
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (image.layer, image.config, image.manifest):
        (blobs / sha256(blob).removeprefix("sha256:")).write_bytes(blob)
    (out / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            descriptor(
                MEDIA_MANIFEST,
                image.manifest,
                annotations={"org.opencontainers.image.ref.name": tag},
            )
        ],
    }
    (out / "index.json").write_bytes(canonical_json(index))


WORLD_ENV = ROOT / "target/testenv/env"
WORLD_REGISTRIES = ("PROMOTER_TEST_ECR_REGISTRY", "PROMOTER_TEST_QUAY_REGISTRY", "PROMOTER_TEST_PUBLIC_REGISTRY")


def world_access(reference: str, env_file: Path = WORLD_ENV) -> dict[str, str]:
    """DOCKER_CONFIG and SSL_CERT_FILE of the local test world when `reference`
    names one of its registries; nothing for any other host or without a world."""
    if not env_file.is_file():
        return {}
    world = dict(re.findall(r"^export (\w+)=(\S*)$", env_file.read_text(), re.MULTILINE))
    if reference.split("/", 1)[0] not in {world.get(name) for name in WORLD_REGISTRIES}:
        return {}
    return {"DOCKER_CONFIG": world["PROMOTER_TEST_DOCKER_CONFIG"], "SSL_CERT_FILE": world["PROMOTER_TEST_CA"]}


def push(layout: Path, reference: str, digest: str) -> None:
    """Pushes the layout's one image to `reference` and checks the digest there."""
    crane = shutil.which("crane")
    if crane is None:
        raise BuildError("crane is not on PATH: run `make tools` and add target/testenv/bin to PATH")
    env = {**os.environ, **world_access(reference)}
    pushed = subprocess.run([crane, "push", str(layout), reference], capture_output=True, text=True, env=env)
    if pushed.returncode != 0:
        raise BuildError(f"crane push {reference} failed: {pushed.stderr.strip()}")
    there = subprocess.run([crane, "digest", reference], capture_output=True, text=True, env=env)
    if there.stdout.strip() != digest:
        raise BuildError(f"{reference} holds {there.stdout.strip() or there.stderr.strip()}, not {digest}")


def with_tag(reference: str, tag: str) -> str:
    """`host/repo` → `host/repo:tag`; a reference with a tag stays as it is."""
    last = reference.rsplit("/", 1)[-1]
    return reference if ":" in last else f"{reference}:{tag}"


def git(*args: str) -> str:
    result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def source_url() -> str | None:
    """The repository's address: `repository` in Cargo.toml, else the `origin` remote."""
    package = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    url = package.get("repository") or git("config", "--get", "remote.origin.url")
    if url.startswith("git@") and ":" in url:
        host, path = url[4:].split(":", 1)
        url = f"https://{host}/{path}"
    return url.removesuffix(".git") or None


def labels(source: str | None, revision: str | None, created_epoch: int | None) -> Labels:
    """The labels: what was given, else what the checkout says."""
    revision = revision or git("rev-parse", "HEAD")
    if created_epoch is None:
        epoch = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct", "HEAD")
        created_epoch = int(epoch) if epoch else None
    if not revision or created_epoch is None:
        raise BuildError(f"{ROOT} is not a git checkout: pass --revision and --created-epoch")
    version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
    return Labels(source or source_url(), version, revision, created_epoch)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, default=RELEASE_BINARY)
    parser.add_argument("--out", type=Path, default=ROOT / "target/image")
    parser.add_argument("--tag", help="the tag named in the layout's index.json [default: the version]")
    parser.add_argument("--source", help="org.opencontainers.image.source [default: Cargo.toml's repository, else the origin remote]")
    parser.add_argument("--revision", help="org.opencontainers.image.revision [default: git HEAD]")
    parser.add_argument("--created-epoch", type=int, help="[default: SOURCE_DATE_EPOCH, else the commit time]")
    parser.add_argument("--ca-bundle", type=Path, help="[default: the host's ca-certificates bundle]")
    parser.add_argument("--push", metavar="REF", help="push to host/repo[:tag] (default tag: --tag, else the version)")
    args = parser.parse_args(argv)
    try:
        if not args.binary.is_file():
            raise BuildError(
                f"{args.binary} does not exist: build it first "
                "(cargo build --release --locked --bin image-promoter)"
            )
        image_labels = labels(args.source, args.revision, args.created_epoch)
        if git("status", "--porcelain", "--untracked-files=no"):
            print(f"image: the checkout has uncommitted changes; the revision label says {image_labels.revision}", file=sys.stderr)
        if not image_labels.source:
            print("image: no source address (no `repository` in Cargo.toml, no origin remote): "
                  "the org.opencontainers.image.source label is left out; pass --source", file=sys.stderr)
        image = build(args.binary, image_labels, ca_bundle=args.ca_bundle)
        tag = args.tag or image_labels.version
        write_layout(image, args.out, tag)
        print(image.digest, flush=True)
        if args.push:
            reference = with_tag(args.push, tag)
            push(args.out, reference, image.digest)
            print(f"image: pushed {reference}@{image.digest}", file=sys.stderr)
    except BuildError as error:
        print(f"image: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
