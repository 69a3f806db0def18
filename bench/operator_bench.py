#!/usr/bin/env python3
"""Benchmark the operator (`make bench-operator`, also part of `make bench`).

Issue 11 sets the operator its numbers: 100 ImagePromotions of small distinct
images created at once become Ready quickly, with at most 4 status patches per
object and a peak RSS of at most 128 MiB; then 1,000 finished promotions go
through one resync costing one manifest HEAD per (target, write-once tag).
This harness measures exactly those on the test world of `make env-up` and
writes them between the operator markers of docs/benchmarks.md (a part that
bench.py keeps across its own runs).

How a run goes:
  1. A namespace of its own, and small distinct images (one 4 KiB layer and a
     config each) pushed to the "internal ECR" registry and registered in moto
     with their real digests, in an immutable, KMS-encrypted repository, each
     with a completed scan without findings: what the default policy asks.
  2. The release binary runs `image-promoter run` against the test world as a
     child process (admin kubeconfig, the test world's configuration, metrics and
     probes on free ports, --watch-namespace set to the run's namespace).
  3. Phase "100 at once": the objects are created with one `kubectl apply`; the
     clock stops when every one is Ready=True. Status patches are counted from a
     watch on the objects (each MODIFIED event after creation is one status
     write, since nothing else changes them); peak RSS is the operator's
     VmHWM from /proc.
  4. Phase "resync": the 100 are joined by more promotions until 1,000 are
     Ready. The operator is restarted with a short --resync-interval; the
     requests of its start-up pass and of the one resync that follows are read
     from its own `image_promoter_registry_requests_total` for the target
     registry, and divided by the promotions.

Environment: BENCH_QUICK=1 (20 and 200 promotions instead of 100 and 1,000),
BENCH_OUT (where to write; default docs/benchmarks.md), BENCH_KEEP=1 (keep the
namespace, images and target repositories).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / "target" / "testenv"
BINARY = Path(os.environ.get("BENCH_ENGINE", ROOT / "target" / "release" / "image-promoter"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
FIRST = 20 if QUICK else 100
TOTAL = 200 if QUICK else 1000
RESYNC_SECONDS = 60
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "docs" / "benchmarks.md"))
START = "<!-- operator-bench:start -->"
END = "<!-- operator-bench:end -->"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def log(message: str) -> None:
    print(f"bench-operator: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    log(message)
    sys.exit(1)


def load_env() -> dict[str, str]:
    path = STATE / "env"
    if not path.exists():
        fail("no test world: run `make env-up` first")
    env = dict(os.environ)
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            env[key] = value.strip('"')
    env["PATH"] = f"{STATE / 'bin'}:{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """Just enough of the distribution API to push small images with basic auth."""

    def __init__(self, host: str, user: str, password: str, ca: str):
        self.host = host
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tls = ssl.create_default_context(cafile=ca)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        url = path if path.startswith("https://") else f"https://{self.host}{path}"
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Authorization", self.auth)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        return urllib.request.urlopen(request, context=self.tls)

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + sha256(data).hexdigest()
        started = self.request("POST", f"/v2/{repo}/blobs/uploads/", b"")
        location = started.headers["Location"]
        separator = "&" if "?" in location else "?"
        self.request("PUT", f"{location}{separator}digest={digest}", data,
                     {"Content-Type": "application/octet-stream"})
        return digest

    def push_image(self, repo: str, tag: str, seed: str) -> tuple[bytes, str]:
        layer = (seed * (4096 // len(seed) + 1)).encode()[:4096]
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {"seed": seed}},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256(layer).hexdigest()]}}).encode()
        layer_digest = self.push_blob(repo, layer)
        config_digest = self.push_blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
        }).encode()
        self.request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
        return manifest, "sha256:" + sha256(manifest).hexdigest()


def ecr_credentials(env: dict[str, str]) -> tuple[str, str]:
    config = json.loads(Path(env["PROMOTER_TEST_DOCKER_CONFIG"], "config.json").read_text())
    auth = config["auths"][env["PROMOTER_TEST_ECR_REGISTRY"]]["auth"]
    user, password = base64.b64decode(auth).decode().split(":", 1)
    return user, password


def seed_images(env: dict[str, str], repo: str, count: int) -> list[str]:
    """Pushes `count` images tagged t0…, registers them in moto; returns the tags."""
    import boto3  # the test world's venv has it (moto depends on it)

    user, password = ecr_credentials(env)
    registry = Registry(env["PROMOTER_TEST_ECR_REGISTRY"], user, password, env["PROMOTER_TEST_CA"])
    ecr = boto3.client("ecr", endpoint_url=env["AWS_ENDPOINT_URL_ECR"], region_name=env["AWS_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    # What the default policy asks (spec.verify's defaults): immutable tags,
    # KMS encryption, a completed scan without HIGH or CRITICAL findings.
    ecr.create_repository(repositoryName=repo, imageTagMutability="IMMUTABLE",
                          encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "alias/bench"})
    tags, results = [], []
    for i in range(count):
        tag = f"t{i}"
        manifest, digest = registry.push_image(repo, tag, f"{repo}-{i}-")
        ecr.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageManifestMediaType=OCI_MANIFEST,
                      imageTag=tag, imageDigest=digest)
        ecr.start_image_scan(repositoryName=repo, imageId={"imageDigest": digest})
        # moto keys injected results by the imageId given: inject by digest, as the product asks.
        results.append({
            "registryId": env["PROMOTER_TEST_ECR_ACCOUNT"], "repositoryName": repo,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE", "description": "scan COMPLETE"},
            "imageScanFindings": {"imageScanCompletedAt": 1_781_000_000, "vulnerabilitySourceUpdatedAt": 1_781_000_000,
                                  "findingSeverityCounts": {}, "findings": []},
        })
        tags.append(tag)
    body = json.dumps({"results": results, "region": env["AWS_REGION"],
                       "account_id": env["PROMOTER_TEST_ECR_ACCOUNT"]}).encode()
    request = urllib.request.Request(f"{env['AWS_ENDPOINT_URL_ECR']}/moto-api/static/ecr/scan-finding-results",
                                     data=body, method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    return tags


def promotion(env: dict[str, str], namespace: str, name: str, source: str, target: str, tag: str) -> dict:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1", "kind": "ImagePromotion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"image": f"{env['PROMOTER_TEST_ECR_REGISTRY']}/{source}:{tag}"},
            "targets": [{"name": "quay", "repository": f"{env['PROMOTER_TEST_QUAY_REGISTRY']}/{target}", "tags": [tag]}],
        },
    }


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kubectl", *args], env=env, input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def apply(env: dict[str, str], objects: list[dict]) -> None:
    kubectl(env, "apply", "--server-side", "-f", "-", stdin="\n".join(json.dumps(o) for o in objects))


def ready_names(env: dict[str, str], namespace: str) -> set[str]:
    listed = json.loads(kubectl(env, "get", "imagepromotions", "-n", namespace, "-o", "json"))
    ready = set()
    for item in listed["items"]:
        for condition in item.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                ready.add(item["metadata"]["name"])
    return ready


def wait_ready(env: dict[str, str], namespace: str, count: int, within: float) -> float:
    started = time.monotonic()
    while True:
        ready = len(ready_names(env, namespace))
        if ready >= count:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            fail(f"only {ready} of {count} promotions Ready after {within:.0f} s")
        time.sleep(0.5)


class Operator:
    """`image-promoter run` as a child process."""

    def __init__(self, env: dict[str, str], namespace: str, resync: str, log_path: Path):
        self.metrics = free_port()
        self.health = free_port()
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BINARY), "run", "--config", env["PROMOTER_TEST_CONFIG"],
             "--metrics-bind-address", f"127.0.0.1:{self.metrics}",
             "--health-probe-bind-address", f"127.0.0.1:{self.health}",
             "--watch-namespace", namespace, "--resync-interval", resync, "--log-format", "text"],
            env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{self.health}/readyz", timeout=1).status == 200:
                    log(f"operator pid {self.process.pid} ready; metrics at http://127.0.0.1:{self.metrics}/metrics")
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                fail(f"the operator exited with {self.process.returncode}; see {log_path}")
            time.sleep(0.2)
        fail(f"the operator was not ready within 60 s; see {log_path}")

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Watch:
    """Counts MODIFIED events per object of the namespace."""

    def __init__(self, env: dict[str, str], namespace: str, out: Path):
        self.out = out
        self.file = out.open("w")
        self.process = subprocess.Popen(
            ["kubectl", "get", "imagepromotions", "-n", namespace, "--watch-only", "--output-watch-events", "-o", "json"],
            env=env, stdout=self.file, stderr=subprocess.DEVNULL)

    def modified(self) -> dict[str, int]:
        self.process.terminate()
        self.process.wait()
        self.file.close()
        counts: dict[str, int] = {}
        decoder = json.JSONDecoder()
        text = self.out.read_text()
        at = 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                break
            event, at = decoder.raw_decode(text, at)
            if event.get("type") == "MODIFIED":
                name = event["object"]["metadata"]["name"]
                counts[name] = counts.get(name, 0) + 1
        return counts


def registry_requests(operator: "Operator", host: str) -> int:
    """Requests the operator sent to `host`, from its own metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics}/metrics", timeout=5).read().decode()
    prefix = f'image_promoter_registry_requests_total{{registry="{host}"'
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)))


def write(section: str) -> None:
    text = OUT.read_text() if OUT.exists() else "# Benchmarks\n"
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    OUT.write_text(text)
    log(f"wrote {OUT}")


def main() -> None:
    env = load_env()
    if not BINARY.exists():
        fail(f"{BINARY} is missing: cargo build --release --bin image-promoter")
    run = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    namespace = f"bench-operator-{run}"
    source = f"bench-operator/{run}/app"
    work = ROOT / "target" / "bench" / "operator" / run
    work.mkdir(parents=True, exist_ok=True)
    kubectl(env, "apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl(env, "create", "namespace", namespace)

    log(f"seeding {TOTAL} images into {source}")
    seeded = time.monotonic()
    tags = seed_images(env, source, TOTAL)
    log(f"seeded in {time.monotonic() - seeded:.1f} s")

    # Phase 1: FIRST promotions of distinct images created at once.
    operator = Operator(env, namespace, "1h", work / "operator.log")
    watch = Watch(env, namespace, work / "watch.json")
    time.sleep(1)  # the watch has started (a benchmark, not a test: a pause is fine here)
    first = [promotion(env, namespace, f"p{i}", source, f"bench-operator/{run}/first", tag)
             for i, tag in enumerate(tags[:FIRST])]
    apply(env, first)
    elapsed = wait_ready(env, namespace, FIRST, within=600)
    time.sleep(2)  # let the last status writes reach the watch
    patches = watch.modified()
    peak = operator.peak_rss_kib()
    per_object = [patches.get(o["metadata"]["name"], 0) for o in first]
    log(f"{FIRST} Ready in {elapsed:.1f} s; patches max {max(per_object)}, mean {sum(per_object) / len(per_object):.2f}; peak RSS {peak / 1024:.1f} MiB")

    # Phase 2: up to TOTAL finished promotions, then one resync.
    more = [promotion(env, namespace, f"p{i}", source, f"bench-operator/{run}/rest", tags[i])
            for i in range(FIRST, TOTAL)]
    apply(env, more)
    filled = wait_ready(env, namespace, TOTAL, within=1800)
    log(f"{TOTAL} Ready ({filled:.1f} s for the {TOTAL - FIRST} more)")
    operator.stop()

    quay = env["PROMOTER_TEST_QUAY_REGISTRY"]
    restart_started = time.monotonic()
    operator = Operator(env, namespace, f"{RESYNC_SECONDS}s", work / "operator.log")
    # The start-up pass (every object reconciled once, each finished one
    # checked for drift): wait until the requests stop for a while.
    last, quiet_since = 0, time.monotonic()
    while time.monotonic() - quiet_since < 5:
        time.sleep(1)
        now = registry_requests(operator, quay)
        if now != last:
            last, quiet_since = now, time.monotonic()
    startup_requests = last
    startup_seconds = quiet_since - restart_started
    log(f"start-up pass: {startup_requests} requests in {startup_seconds:.1f} s")
    # One resync: each object comes back one --resync-interval (±10 %) after
    # its start-up reconcile; count until every object has been checked again.
    first_request = last_request = None
    deadline = time.monotonic() + RESYNC_SECONDS * 1.3
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = registry_requests(operator, quay)
        if now != last:
            first_request = first_request or time.monotonic()
            last, last_request = now, time.monotonic()
        if now - startup_requests >= startup_requests:
            break
    resync_requests = registry_requests(operator, quay) - startup_requests
    resync_span = (last_request - first_request) if first_request and last_request else 0.0
    operator.stop()
    log(f"resync: {resync_requests} requests for {TOTAL} promotions over {resync_span:.1f} s")

    if os.environ.get("BENCH_KEEP") != "1":
        kubectl(env, "delete", "namespace", namespace, "--wait=false")
        for registry in ("registry-ecr", "registry-quay"):
            shutil.rmtree(STATE / "registries" / registry / "storage" / "docker" / "registry" / "v2"
                          / "repositories" / "bench-operator" / run, ignore_errors=True)

    mean = sum(per_object) / len(per_object)
    machine = f"{os.cpu_count()} CPUs, {os.uname().release}"
    section = f"""## The operator (`make bench-operator`)

Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine}, `{BINARY.relative_to(ROOT) if BINARY.is_relative_to(ROOT) else BINARY}`,
the test world of `make env-up`, `--concurrency 4`{' (BENCH_QUICK=1)' if QUICK else ''}. Command:
`make bench-operator` (bench/operator_bench.py; its module doc gives the method). Drift
checks are jittered by ±10 % of `--resync-interval` (60 s here), which is why one resync's
requests spread over about 12 s.

| measure | result | goal |
|---|---|---|
| {FIRST} ImagePromotions created at once, until all Ready | {elapsed:.1f} s | — |
| status patches per object | max {max(per_object)}, mean {mean:.2f} | ≤ 4 |
| operator peak RSS | {peak / 1024:.1f} MiB | ≤ 128 MiB |
| restart with {TOTAL} finished promotions: target requests | {startup_requests} ({startup_requests / TOTAL:.2f} per promotion) in {startup_seconds:.1f} s | — |
| one resync of {TOTAL} finished promotions: target requests | {resync_requests} ({resync_requests / TOTAL:.2f} per promotion; each has one target with one tag) | 1 HEAD per target tag |
| one resync: time from its first to its last request | {resync_span:.1f} s | — |
"""
    write(section)


if __name__ == "__main__":
    main()
