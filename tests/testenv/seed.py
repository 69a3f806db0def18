"""Puts images into the running test world the way production has them, for the
scripts that show or export the operator at work (`make demo`, the Argo CD
fixtures' exporter). The Rust tests have their own helpers (tests/promote/world.rs).

A source image lives in "internal ECR": pushed to the registry that stands in for
ECR's data plane, registered in moto (the ECR API) with its real digest, given a
scan result through moto's injection endpoint (by `imageDigest`: moto keys results
by the image id they were injected with) and, when asked, signed by the real cosign.
Images are one small reproducible layer pushed with crane.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import boto3
import requests

ROOT = Path(__file__).resolve().parents[2]
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/test-world"


class Failure(Exception):
    """What went wrong, said so that the reader knows what to do."""


def load_env() -> dict[str, str]:
    """The process environment with the test world's env file on top."""
    path = ROOT / "target" / "testenv" / "env"
    if not path.exists():
        raise Failure(f"{path} is missing: start the test world first (make env-up)")
    env = dict(os.environ)
    for line in path.read_text().splitlines():
        match = re.match(r"export (\w+)=(.*)$", line)
        if match:
            key, value = match.groups()
            env[key] = os.path.expandvars(value.strip('"').replace("$PATH", env.get("PATH", "")))
    return env


def reproducible_layer(path: str, content: str) -> bytes:
    """A tar layer holding one file at `path`, byte-identical on every run."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        data = content.encode()
        info = tarfile.TarInfo(path)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Seeder:
    """The test world's registries, moto and cosign, as the scripts use them."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.ecr = boto3.client(
            "ecr",
            endpoint_url=env["AWS_ENDPOINT_URL_ECR"],
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        self.ecr_host = env["PROMOTER_TEST_ECR_REGISTRY"]
        self.quay_host = env["PROMOTER_TEST_QUAY_REGISTRY"]
        self.public_host = env["PROMOTER_TEST_PUBLIC_REGISTRY"]
        self.tool_env = dict(env, DOCKER_CONFIG=env["PROMOTER_TEST_DOCKER_CONFIG"], SSL_CERT_FILE=env["PROMOTER_TEST_CA"])
        # Where the one file of every pushed image lives (part of its digest).
        self.layer_path = "etc/test-world-image"

    def run(self, *args: str, stdin: str | None = None, cwd: Path | None = None, extra_env: dict | None = None) -> str:
        env = dict(self.tool_env, **(extra_env or {}))
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, env=env, cwd=cwd)
        if done.returncode != 0:
            raise Failure(f"{' '.join(args[:3])} … failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.run("kubectl", *args, stdin=stdin)

    # --- "internal ECR" ------------------------------------------------------------

    def source(self, name: str, tag: str, content: str, scan: str, findings: list[tuple[str, str]]) -> tuple[str, str]:
        """A fresh moto repository `name` (immutable tags, KMS) holding one image
        tagged `tag` whose only layer holds `content`, with a scan result (status
        and (CVE, severity) findings). Returns the tag reference and the digest."""
        try:
            self.ecr.delete_repository(repositoryName=name, force=True)
        except self.ecr.exceptions.RepositoryNotFoundException:
            pass
        self.ecr.create_repository(
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            encryptionConfiguration={"encryptionType": "KMS", "kmsKey": KMS_KEY},
        )
        reference = f"{self.ecr_host}/{name}:{tag}"
        self.push(reference, content)
        digest = self.run("crane", "digest", reference).strip()
        manifest = self.run("crane", "manifest", reference)
        media_type = json.loads(manifest).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
        self.ecr.put_image(
            repositoryName=name,
            imageManifest=manifest,
            imageManifestMediaType=media_type,
            imageTag=tag,
            imageDigest=digest,
        )
        self.scan(name, digest, scan, findings)
        return reference, digest

    def push(self, reference: str, content: str) -> None:
        """Pushes an image whose only layer holds `content` to `reference`."""
        with tempfile.TemporaryDirectory() as folder:
            layer = Path(folder) / "layer.tar"
            layer.write_bytes(reproducible_layer(self.layer_path, content))
            self.run("crane", "append", "--new_layer", str(layer), "--new_tag", reference)

    def scan(self, name: str, digest: str, status: str, findings: list[tuple[str, str]]) -> None:
        """Starts a scan in moto and injects its result (by digest)."""
        self.ecr.start_image_scan(repositoryName=name, imageId={"imageDigest": digest})
        result = {
            "registryId": self.env["PROMOTER_TEST_ECR_ACCOUNT"],
            "repositoryName": name,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": status, "description": f"scan {status}"},
        }
        if status == "COMPLETE":
            counts: dict[str, int] = {}
            for _, severity in findings:
                counts[severity] = counts.get(severity, 0) + 1
            result["imageScanFindings"] = {
                "imageScanCompletedAt": 1_781_000_000,
                "vulnerabilitySourceUpdatedAt": 1_781_000_000,
                "findingSeverityCounts": counts,
                "findings": [
                    {"name": cve, "uri": f"https://cve.example/{cve}", "severity": severity,
                     "attributes": [{"key": "package_name", "value": "openssl"}]}
                    for cve, severity in findings
                ],
            }
        response = requests.post(
            f"{self.env['AWS_ENDPOINT_URL_ECR']}/moto-api/static/ecr/scan-finding-results",
            json={"results": [result], "region": self.env["AWS_REGION"], "account_id": self.env["PROMOTER_TEST_ECR_ACCOUNT"]},
            timeout=30,
        )
        response.raise_for_status()

    # --- cosign --------------------------------------------------------------------

    def key_pair(self, folder: Path) -> Path:
        """A cosign key pair (empty password) in `folder`, made once; the public key's path."""
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "cosign.key").exists():
            self.run("cosign", "generate-key-pair", cwd=folder, extra_env={"COSIGN_PASSWORD": ""})
        return folder / "cosign.pub"

    def sign(self, reference: str, folder: Path) -> None:
        """Signs `reference` (by digest) with the key pair in `folder`, without a
        transparency log (nothing outside is reachable)."""
        self.run(
            "cosign", "sign", "--key", str(folder / "cosign.key"), "--tlog-upload=false", "--yes", reference,
            extra_env={"COSIGN_PASSWORD": "", "SIGSTORE_NO_CACHE": "true", "TUF_ROOT": str(folder / "tuf")},
        )
