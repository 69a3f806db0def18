"""Tests of hack/image/build.py (`make image-check`, part of `make test`).

The image is built from the release binary (`make test` builds it first) twice
into two layouts, which must be byte-for-byte the same; its config and layer
are checked entry by entry; and it is pushed with crane to the test world's
"internal ECR", which must then serve the same digest.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build  # noqa: E402

ROOT = build.ROOT
BINARY = build.RELEASE_BINARY
REVISION = "0123456789abcdef0123456789abcdef01234567"
EPOCH = 1795993377  # 2026-11-29T23:02:57Z
SOURCE = "https://example.com/image-promoter"


def run_build(out: Path, *extra: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack/image/build.py"), "--binary", str(BINARY),
         "--out", str(out), "--revision", REVISION, "--created-epoch", str(EPOCH),
         "--source", SOURCE, "--tag", "test", *extra],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise AssertionError(f"build.py failed ({result.returncode}): {result.stderr}")
    return result.stdout.strip().splitlines()[0]


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()


def tree(layout: Path) -> dict[str, bytes]:
    return {str(p.relative_to(layout)): p.read_bytes() for p in sorted(layout.rglob("*")) if p.is_file()}


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if not BINARY.is_file():
            raise AssertionError(
                f"{BINARY} is missing: `make test` builds it; by hand, "
                "cargo build --release --locked --bin image-promoter"
            )
        cls.dir = Path(tempfile.mkdtemp(prefix="image-test-"))
        cls.first = cls.dir / "first"
        cls.digest = run_build(cls.first)
        cls.manifest = json.loads(blob(cls.first, cls.digest))
        cls.config = json.loads(blob(cls.first, cls.manifest["config"]["digest"]))
        layer = blob(cls.first, cls.manifest["layers"][0]["digest"])
        cls.tar = gzip.decompress(layer)
        cls.members = tarfile.open(fileobj=io.BytesIO(cls.tar)).getmembers()

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_two_builds_of_the_same_inputs_are_the_same_bytes(self) -> None:
        second = self.dir / "second"
        self.assertEqual(run_build(second), self.digest)
        self.assertEqual(tree(second), tree(self.first))
        moved = self.dir / "moved"
        self.assertNotEqual(
            run_build(moved, "--created-epoch", str(EPOCH + 1)), self.digest,
            "the creation time is an input: another time, another digest",
        )

    def test_the_layout_is_an_oci_layout_naming_the_image(self) -> None:
        index = json.loads((self.first / "index.json").read_text())
        self.assertEqual(json.loads((self.first / "oci-layout").read_text()), {"imageLayoutVersion": "1.0.0"})
        [entry] = index["manifests"]
        self.assertEqual(entry["digest"], self.digest)
        self.assertEqual(entry["annotations"]["org.opencontainers.image.ref.name"], "test")
        for descriptor in [entry, self.manifest["config"], *self.manifest["layers"]]:
            data = blob(self.first, descriptor["digest"])
            self.assertEqual((build.sha256(data), len(data)), (descriptor["digest"], descriptor["size"]))
        self.assertEqual(self.config["rootfs"]["diff_ids"], [build.sha256(self.tar)])

    def test_the_config_runs_the_operator_as_nonroot_with_its_labels(self) -> None:
        version = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]
        config = self.config["config"]
        self.assertEqual(config["User"], "65532")
        self.assertEqual(config["Entrypoint"], ["/usr/local/bin/image-promoter"])
        self.assertEqual(config["Cmd"], ["run"])
        machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        self.assertEqual((self.config["os"], self.config["architecture"]), ("linux", machine))
        self.assertEqual(self.config["created"], "2026-11-29T23:02:57Z")
        expected = {
            "org.opencontainers.image.source": SOURCE,
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.revision": REVISION,
            "org.opencontainers.image.created": "2026-11-29T23:02:57Z",
        }
        for key, value in expected.items():
            self.assertEqual(config["Labels"].get(key), value, key)
            self.assertEqual(self.manifest["annotations"].get(key), value, key)

    def test_the_layer_holds_exactly_the_binary_its_libraries_and_the_base_files(self) -> None:
        libraries = {path for path, _ in build.shared_libraries(BINARY)}
        self.assertTrue(any("/ld-linux" in path for path in libraries), f"the dynamic loader: {libraries}")
        self.assertTrue(any("libc.so" in path for path in libraries), libraries)
        files = {
            "usr/local/bin/image-promoter", "etc/ssl/certs/ca-certificates.crt", "etc/passwd",
            "etc/group", "etc/nsswitch.conf", *libraries,
        }
        dirs = {"home/nonroot", "tmp"}
        for path in files | dirs:
            parent = os.path.dirname(path)
            while parent:
                dirs.add(parent)
                parent = os.path.dirname(parent)
        names = [m.name.rstrip("/") for m in self.members]
        self.assertEqual(names, sorted(names), "entries are sorted")
        self.assertEqual(set(names), files | dirs)
        self.assertEqual({m.name.rstrip("/") for m in self.members if m.isdir()}, dirs)
        for member in self.members:
            self.assertEqual(member.mtime, EPOCH, member.name)
            self.assertEqual((member.uname, member.gname), ("", ""), member.name)
            owner = 65532 if member.name.startswith("home/nonroot") else 0
            self.assertEqual((member.uid, member.gid), (owner, owner), member.name)
        by_name = {m.name.rstrip("/"): m for m in self.members}
        self.assertEqual(by_name["tmp"].mode, 0o1777)
        self.assertEqual(by_name["usr/local/bin/image-promoter"].mode, 0o755)
        tar = tarfile.open(fileobj=io.BytesIO(self.tar))
        self.assertEqual(tar.extractfile("usr/local/bin/image-promoter").read(), BINARY.read_bytes())
        passwd = tar.extractfile("etc/passwd").read().decode()
        self.assertIn("nonroot:x:65532:65532:", passwd)
        self.assertIn("nonroot:x:65532:", tar.extractfile("etc/group").read().decode())
        self.assertIn(b"BEGIN CERTIFICATE", tar.extractfile("etc/ssl/certs/ca-certificates.crt").read())

    def test_the_gzip_stream_has_no_time_or_name(self) -> None:
        layer = blob(self.first, self.manifest["layers"][0]["digest"])
        self.assertEqual(layer[:3], b"\x1f\x8b\x08")
        self.assertEqual(layer[3] & 0x08, 0, "no FNAME")
        self.assertEqual(layer[4:8], b"\0\0\0\0", "MTIME 0")

    def test_a_push_to_the_test_world_serves_the_same_digest(self) -> None:
        registry = os.environ.get("PROMOTER_TEST_ECR_REGISTRY")
        if not registry:
            raise AssertionError("PROMOTER_TEST_ECR_REGISTRY is not set: run `make env-up` and "
                                 "`set -a; . target/testenv/env; set +a` (make test does)")
        env = dict(os.environ)
        env["DOCKER_CONFIG"] = os.environ["PROMOTER_TEST_DOCKER_CONFIG"]
        env["SSL_CERT_FILE"] = os.environ["PROMOTER_TEST_CA"]
        env["PATH"] = f"{ROOT / 'target/testenv/bin'}:{env['PATH']}"
        reference = f"{registry}/image-test/image-promoter:{os.getpid()}"
        pushed = subprocess.run(
            [sys.executable, str(ROOT / "hack/image/build.py"), "--binary", str(BINARY),
             "--out", str(self.dir / "pushed"), "--revision", REVISION, "--created-epoch",
             str(EPOCH), "--source", SOURCE, "--tag", "test", "--push", reference],
            capture_output=True, text=True, env=env,
        )
        self.assertEqual(pushed.returncode, 0, pushed.stderr)
        config = subprocess.run(["crane", "config", reference], capture_output=True, text=True, env=env)
        self.assertEqual(config.returncode, 0, config.stderr)
        self.assertEqual(json.loads(config.stdout), self.config)
        self.assertIn(f"pushed {reference}@{self.digest}", pushed.stderr)

    def test_any_registry_of_the_test_world_is_pushed_to_with_its_ca_and_credentials(self) -> None:
        # `make image IMAGE=<a world registry>/…`: no DOCKER_CONFIG or SSL_CERT_FILE
        # from the caller, yet the world's CA and robot account are used.
        registry = os.environ.get("PROMOTER_TEST_QUAY_REGISTRY")
        if not registry:
            raise AssertionError("PROMOTER_TEST_QUAY_REGISTRY is not set: source target/testenv/env")
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONFIG", "SSL_CERT_FILE")}
        env["PATH"] = f"{ROOT / 'target/testenv/bin'}:{env['PATH']}"
        reference = f"{registry}/image-test/quay-host:{os.getpid()}"
        pushed = subprocess.run(
            [sys.executable, str(ROOT / "hack/image/build.py"), "--binary", str(BINARY),
             "--out", str(self.dir / "quay"), "--revision", REVISION, "--created-epoch",
             str(EPOCH), "--source", SOURCE, "--tag", "test", "--push", reference],
            capture_output=True, text=True, env=env,
        )
        self.assertEqual(pushed.returncode, 0, pushed.stderr)
        self.assertIn(f"pushed {reference}@{self.digest}", pushed.stderr)


class WorldAccessTest(unittest.TestCase):
    def test_only_the_world_s_hosts_get_its_docker_config_and_ca(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            env_file = Path(folder) / "env"
            self.assertEqual(build.world_access("127.0.0.1:5000/a:b", env_file), {}, "no world")
            env_file.write_text(
                "export PROMOTER_TEST_CA=/w/ca.pem\nexport PROMOTER_TEST_DOCKER_CONFIG=/w/docker\n"
                "export PROMOTER_TEST_ECR_REGISTRY=127.0.0.1:5000\nexport PROMOTER_TEST_QUAY_REGISTRY=127.0.0.1:5001\n"
                "export PROMOTER_TEST_PUBLIC_REGISTRY=127.0.0.1:5002\nexport PATH=\"/w/bin:$PATH\"\n"
            )
            world = {"DOCKER_CONFIG": "/w/docker", "SSL_CERT_FILE": "/w/ca.pem"}
            for host in ("127.0.0.1:5000", "127.0.0.1:5001", "127.0.0.1:5002"):
                self.assertEqual(build.world_access(f"{host}/team/app:v1", env_file), world, host)
            for reference in ("127.0.0.1:5003/team/app", "registry.example.com/127.0.0.1:5000/app", "127.0.0.1/app"):
                self.assertEqual(build.world_access(reference, env_file), {}, reference)


if __name__ == "__main__":
    unittest.main()
