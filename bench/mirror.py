#!/usr/bin/env python3
"""Benchmark the RegistryMirror against regsync and skopeo sync (`make bench-mirror`).

Issue 13 sets the mirror two goals on a source repository of 1,000 tags: its idle
interval (a second run with nothing changed) makes at least 50x fewer requests than
the fastest peer's, and its backfill (the first run, into an empty target) is no
slower than the fastest peer's. This harness measures both, the same way for every
tool, and writes docs/benchmarks-mirror.md (linked from docs/benchmarks.md) with the
machine it ran on and the command that produced it.

How a run goes:
  1. The harness starts two registries of its own, made from the test world's
     registry configuration (same binary, TLS leaf of the test CA, htpasswd and
     credentials as the world's ECR registry) with one difference: the access log is
     on. The first stands in for Quay (the source), the second for the public target.
     Every request any tool makes is counted in these access logs, by the registry
     itself: no proxy sits between a tool and a registry, so nothing changes the
     tools' timing, connection reuse or HTTP version. The world's own registries keep
     their access logs off, which is why the harness does not use them directly.
  2. It seeds the source with N small images (1,000; 100 with BENCH_QUICK=1), one tag
     each: two base layers shared by all of them, one small layer and a config of
     their own, so there are N distinct manifests. Tags look like a real repository's:
     releases (`v1.2.3`), release candidates, commit tags and `latest`. Content is
     reproducible (fixed seed).
  3. For every tool and repetition, the target registry is started afresh (empty
     storage, a new port, so neither skopeo's persistent blob-info cache nor a
     previous tool's blobs can help), then:
       - backfill: the tool's one-shot sync of the whole source repository;
       - check: the target's tag list equals the source's and every tag's digest
         (HEAD, by the harness) equals the source's; a mismatch fails the run;
       - idle: the same command again, nothing changed (image-promoter keeps its
         ledger between the two runs in `--state`, as the operator keeps it in memory).
     Each phase is timed (wall, and CPU and peak RSS of the tool from GNU time), and
     its requests are read from both access logs between two marker requests, split
     by kind: tags list, manifest GET / HEAD / PUT, blob HEAD / GET / upload, other
     (ping, catalog), with two more kinds that only a tool copying signatures asks for:
     "signature tag" (any request for a `sha256-<hex>[.sig|.att|.sbom]` tag: cosign's and
     the referrers fallback's) and "referrers" (the OCI 1.1 referrers API). 401
     challenges count: a rate limiter counts them too.
  4. Repetitions are interleaved and the tool order rotates; medians are reported.

The peers, each with its defaults:
  - `regsync once` (regclient) with a `type: repository` sync: per tag, a manifest HEAD
    at the source and at the target, and a copy when they differ.
  - `regsync once --missing`: copies only tags absent at the target (one tags list of
    each side); it never sees a tag that moved at the source. Shown for completeness,
    not counted as "the fastest peer" for the request goal (it does not do the same job).
  - `skopeo sync --all --preserve-digests`, docker to docker.
image-promoter runs `image-promoter mirror -f MIRROR.yaml --config CONFIG --state STATE
--json` (issue 13's CLI): one interval of a RegistryMirror with `maxCopiesPerSync` high
enough to backfill in one interval. When the binary has no `mirror` subcommand, the
harness fails and says so (BENCH_TOOLS without image-promoter measures the peers only).

Environment: BENCH_QUICK=1 (100 tags), BENCH_TAGS (another tag count), BENCH_REPS (3),
BENCH_TOOLS (comma list of tool names as printed), BENCH_OUT (where the Markdown goes:
docs/benchmarks-mirror.md for a full run, target/bench/benchmarks-mirror-quick.md for a
quick one), BENCH_KEEP=1 (keep the harness's registries and files), BENCH_ENGINE
(another engine binary than target/release/image-promoter).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (  # noqa: E402  (bench.py is the copy benchmark; its helpers are shared)
    ENGINE,
    HAND_WRITTEN,
    MANIFEST_ACCEPT,
    REPO,
    Command,
    CpuAccount,
    OwnRegistries,
    Run,
    fail,
    load_env,
    log,
    measure,
    tool_version,
)

WORK = REPO / "target" / "bench" / "mirror"

ENGINE_TOOL = "image-promoter"
REGSYNC = "regsync"
REGSYNC_MISSING = "regsync --missing"
SKOPEO_SYNC = "skopeo sync"
PEERS = [REGSYNC, SKOPEO_SYNC, REGSYNC_MISSING]
# Peers that look at every selected tag each interval, as the mirror must (it follows
# tags that move at the source and reports drift): the ones the goals compare with.
CHECKING_PEERS = [REGSYNC, SKOPEO_SYNC]
TOOLS = [ENGINE_TOOL, *PEERS]

PHASES = ["backfill", "idle"]
KINDS = ["tags list", "manifest GET", "manifest HEAD", "manifest PUT", "signature tag", "referrers", "blob HEAD",
         "blob GET", "blob upload", "other"]
# cosign's and the referrers fallback's tags: sha256-<hex>, optionally .sig, .att or .sbom
SIGNATURE_TAG = re.compile(r"/manifests/sha256-[0-9a-f]{64}(\.[a-z]+)?$")
HARNESS_AGENT = "image-promoter-bench-harness"
SOURCE_REPO = "bench-mirror/app"
SEED = 13
IDLE_REQUEST_GOAL = 50  # the idle interval: at least this many times fewer requests than the fastest peer


# ---------------------------------------------------------------- talking to a registry


class Client:
    """One keep-alive HTTPS connection to a registry, for seeding and checking (not measured)."""

    def __init__(self, host: str, auth_b64: str, ca: str):
        self.host, self.auth_b64 = host, auth_b64
        self.ctx = ssl.create_default_context(cafile=ca)
        self.conn: http.client.HTTPSConnection | None = None

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             agent: str = HARNESS_AGENT) -> tuple[int, dict[str, str], bytes]:
        hdrs = {"Authorization": f"Basic {self.auth_b64}", "User-Agent": agent, **(headers or {})}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, context=self.ctx, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def tags(self, repo: str) -> list[str]:
        status, _, body = self.call("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            return []
        if status != 200:
            fail(f"GET {self.host}/v2/{repo}/tags/list: HTTP {status}")
        return json.loads(body).get("tags") or []

    def digest(self, repo: str, tag: str) -> str | None:
        status, headers, _ = self.call("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
        return headers.get("docker-content-digest") if status == 200 else None

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, _ = self.call("HEAD", f"/v2/{repo}/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, _ = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        if status != 202 or "location" not in headers:
            fail(f"POST {self.host}/v2/{repo}/blobs/uploads/: HTTP {status}")
        location = headers["location"]
        if location.startswith("https://"):
            location = "/" + location.split("/", 3)[3]
        sep = "&" if "?" in location else "?"
        status, _, _ = self.call("PUT", f"{location}{sep}digest={digest}", body=data,
                                 headers={"Content-Type": "application/octet-stream"})
        if status != 201:
            fail(f"PUT blob {digest} to {self.host}/{repo}: HTTP {status}")
        return digest

    def push_manifest(self, repo: str, tag: str, manifest: bytes, media_type: str) -> None:
        status, _, body = self.call("PUT", f"/v2/{repo}/manifests/{tag}", body=manifest,
                                    headers={"Content-Type": media_type})
        if status != 201:
            fail(f"PUT manifest {repo}:{tag} to {self.host}: HTTP {status}: {body[:300]!r}")


# ---------------------------------------------------------------- the source repository


def tag_names(n: int) -> list[str]:
    """n tags as a real repository has them: mostly releases, some candidates, commit tags, `latest`."""
    rng = random.Random(SEED)
    tags = ["latest"]
    commits = max(1, n // 20)
    candidates = max(1, n // 10)
    tags += [f"{rng.getrandbits(28):07x}" for _ in range(commits)]
    releases = n - len(tags) - candidates
    versions = [f"{major}.{minor}.{patch}" for major in range(1, 100) for minor in range(10) for patch in range(10)]
    tags += [f"v{v}" for v in versions[:releases]]
    tags += [f"v{v}-rc.1" for v in versions[releases:releases + candidates]]
    assert len(tags) == n and len(set(tags)) == n
    return tags


@dataclass
class Image:
    tag: str
    blobs: list[bytes]
    manifest: bytes
    media_type: str = "application/vnd.oci.image.manifest.v1+json"

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def layer(seed: str, size: int) -> tuple[bytes, str]:
    """A gzip layer of `size` random (incompressible) bytes, and the digest of what it unpacks to."""
    raw = random.Random(seed).randbytes(size)
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def source_images(n: int) -> list[Image]:
    """The source's images: two shared base layers, then a small layer and a config per tag."""
    base = [layer(f"{SEED}-base-0", 192 * 1024), layer(f"{SEED}-base-1", 32 * 1024)]
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    images = []
    for i, tag in enumerate(tag_names(n)):
        own = layer(f"{SEED}-tag-{tag}", 2048)
        layers = [*base, own]
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "created": (start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": {"Labels": {"org.opencontainers.image.version": tag}},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        }, sort_keys=True).encode()

        def descriptor(media_type: str, data: bytes) -> dict:
            return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
                    "size": len(data)}

        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", blob) for blob, _ in layers],
        }, indent=2).encode()
        images.append(Image(tag, [config, *[blob for blob, _ in layers]], manifest))
    return images


def seed(client_for, repo: str, images: list[Image], workers: int = 4) -> None:
    """Push `images` into `repo`, base layers first, then the rest from `workers` connections."""
    first = client_for()
    for blob in images[0].blobs[1:3]:
        first.push_blob(repo, blob)
    queue = list(images)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        client = client_for()
        while True:
            with lock:
                if not queue or errors:
                    return
                image = queue.pop()
            try:
                for blob in image.blobs:
                    client.push_blob(repo, blob)
                client.push_manifest(repo, image.tag, image.manifest, image.media_type)
            except BaseException as e:  # noqa: BLE001 (reported below, from the main thread)
                with lock:
                    errors.append(e)
                return

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# ---------------------------------------------------------------- counting at the registry

# Apache combined log format, as the distribution registry writes its access log:
# host ident user [time] "METHOD URI PROTO" status size "referer" "agent"
ACCESS_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"')


def kind_of(method: str, uri: str) -> str:
    path = uri.split("?", 1)[0]
    if path.endswith("/tags/list"):
        return "tags list"
    if SIGNATURE_TAG.search(path):
        return "signature tag"
    if "/referrers/" in path:
        return "referrers"
    if "/manifests/" in path:
        return {"GET": "manifest GET", "HEAD": "manifest HEAD", "PUT": "manifest PUT"}.get(method, "other")
    if "/blobs/uploads" in path:
        return "blob upload"
    if "/blobs/" in path:
        return {"GET": "blob GET", "HEAD": "blob HEAD"}.get(method, "other")
    return "other"


@dataclass
class Requests:
    """What one phase asked of one registry, by kind."""

    by_kind: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    challenges: int = 0  # of them answered 401

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def __add__(self, other: "Requests") -> "Requests":
        out = Requests({k: self.by_kind[k] + other.by_kind[k] for k in KINDS}, self.challenges + other.challenges)
        return out


class AccessLog:
    """The access log of one of the harness's registries, read between two marker requests."""

    def __init__(self, path: Path, client: Client):
        self.path, self.client = path, client

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, offset: int) -> Requests:
        """Every request logged after `offset`, up to a marker request sent now; the harness's own excluded.

        The registry writes a line when a request has been answered, so a tool's last
        request may be logged just after the tool exits: the marker, sent after the tool
        exited, is logged after all of them, and reading stops at it.
        """
        marker = f"bench-marker-{uuid.uuid4().hex}"
        self.client.call("GET", "/v2/", agent=marker)
        deadline = time.monotonic() + 30
        while True:
            with open(self.path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            if marker in text:
                break
            if time.monotonic() > deadline:
                fail(f"the marker request never appeared in {self.path}: is the registry's access log on?")
            time.sleep(0.05)
        counted = Requests()
        for line in text.split(marker, 1)[0].splitlines():
            m = ACCESS_LINE.match(line)
            if not m:
                continue  # the registry's own log lines share the file
            method, uri, status, agent = m.groups()
            if agent == HARNESS_AGENT or agent.startswith("bench-marker-"):
                continue
            counted.by_kind[kind_of(method, uri)] += 1
            counted.challenges += status == "401"
        return counted


# ---------------------------------------------------------------- the tools


@dataclass
class Setup:
    """Everything one tool's run needs: hosts, repositories, credentials, its own folder."""

    bin: Path
    ca: str
    auth: tuple[str, str]  # user, password (the world's ECR credentials; both registries take them)
    source_host: str
    source_repo: str
    target_host: str
    folder: Path  # this run's files (configs, state)

    def auth_file(self) -> Path:
        """A docker config.json (also skopeo's authfile) for both registries."""
        path = self.folder / "docker" / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
        path.write_text(json.dumps({"auths": {h: {"auth": token} for h in (self.source_host, self.target_host)}},
                                   indent=2) + "\n")
        path.chmod(0o600)
        return path


@dataclass
class Plan:
    """How one tool backfills and then runs idle, and where the images land."""

    backfill: Command
    idle: Command
    target_repo: str
    engine: bool = False  # whether it is our side


def image_promoter_plan(s: Setup, engine: Path, target_repo: str) -> Plan:
    """Our side: two runs of `image-promoter mirror` on one RegistryMirror, sharing the ledger.

    The first run (empty target, empty state) is the backfill: maxCopiesPerSync is set
    above the tag count so it finishes in one interval; the second, with the state the
    first left, is the idle interval. Both registries are declared `generic` (plain
    distribution registries, as the peers see them) with the same credentials file.
    """
    require_mirror_subcommand(engine)
    auth = s.auth_file()
    config = s.folder / "promoter.yaml"
    lines = ["# Written by bench/mirror.py for one benchmark run.", "registries:"]
    for host in (s.source_host, s.target_host):
        lines += [f'  - host: "{host}"', "    kind: generic", f"    caFile: {s.ca}",
                  "    auth:", "      dockerConfig:", f"        path: {auth}"]
    config.write_text("\n".join(lines) + "\n")
    mirror = s.folder / "mirror.yaml"
    mirror.write_text(
        "# Written by bench/mirror.py: every tag of the source, backfilled in one interval.\n"
        "apiVersion: imagepromoter.dev/v1alpha1\n"
        "kind: RegistryMirror\n"
        "metadata:\n"
        "  name: bench\n"
        "  namespace: default\n"
        "spec:\n"
        "  source:\n"
        f"    repository: {s.source_host}/{s.source_repo}\n"
        "  targets:\n"
        "    - name: bench\n"
        f"      repository: {s.target_host}/{target_repo}\n"
        "  maxCopiesPerSync: 10000\n"
        "  interval: 10m\n"
    )
    state = s.folder / "state.json"
    argv = [str(engine), "mirror", "-f", str(mirror), "--config", str(config), "--state", str(state), "--json"]
    return Plan(Command(argv), Command(argv), target_repo, engine=True)


def require_mirror_subcommand(engine: Path) -> None:
    """Fail loudly when the engine cannot run a mirror: the benchmark never skips our side silently."""
    if not engine.exists():
        fail(f"{engine} is missing: `cargo build --release --locked --bin image-promoter` (make bench-mirror does it)")
    probe = subprocess.run([str(engine), "mirror", "--help"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        said = (probe.stderr or probe.stdout).strip().splitlines()
        fail(f"{engine} has no `mirror` subcommand (issue 13's `image-promoter mirror -f MIRROR.yaml "
             f"[--config FILE] [--state FILE] [--json]`): it said {said[0] if said else f'exit {probe.returncode}'!r}. "
             f"Build a binary that has it, or set BENCH_TOOLS={','.join(map(slug, PEERS))} to measure the peers alone.")
    for flag in ("--state", "--json", "--config"):
        if flag not in probe.stdout:
            fail(f"`{engine.name} mirror --help` does not list {flag}, which this benchmark needs "
                 f"(one interval per run, the ledger kept between runs): the CLI differs from issue 13's contract")


def regsync_plan(s: Setup, target_repo: str, missing: bool) -> Plan:
    pem = Path(s.ca).read_text()

    def quoted(text: str) -> str:
        return json.dumps(text)  # a JSON string is a YAML string

    creds = []
    for host in (s.source_host, s.target_host):
        creds += [f"  - registry: {quoted(host)}", f"    user: {quoted(s.auth[0])}",
                  f"    pass: {quoted(s.auth[1])}", f"    regcert: {quoted(pem)}"]
    config = s.folder / "regsync.yaml"
    config.write_text("\n".join([
        "# Written by bench/mirror.py for one benchmark run.",
        "version: 1",
        "creds:", *creds,
        "defaults:",
        "  skipDockerConfig: true",
        "sync:",
        f"  - source: {quoted(f'{s.source_host}/{s.source_repo}')}",
        f"    target: {quoted(f'{s.target_host}/{target_repo}')}",
        "    type: repository",
    ]) + "\n")
    config.chmod(0o600)
    argv = [str(s.bin / "regsync"), "once", "-c", str(config), "-v", "warn", *(["--missing"] if missing else [])]
    env = {"HOME": str(s.folder)}  # no regclient settings from the user's home
    return Plan(Command(argv, env), Command(argv, env), target_repo)


def skopeo_sync_plan(s: Setup, dest_prefix: str) -> Plan:
    """`skopeo sync` of the source repository; it lands in dest_prefix/<last component of the source>."""
    certs = s.folder / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    shutil.copy(s.ca, certs / "ca.crt")
    auth = s.auth_file()
    argv = [str(s.bin / "skopeo"), "sync", "--all", "--preserve-digests", "--src", "docker", "--dest", "docker",
            "--src-authfile", str(auth), "--dest-authfile", str(auth),
            "--src-cert-dir", str(certs), "--dest-cert-dir", str(certs),
            f"{s.source_host}/{s.source_repo}", f"{s.target_host}/{dest_prefix}"]
    return Plan(Command(argv), Command(argv), f"{dest_prefix}/{s.source_repo.rsplit('/', 1)[-1]}")


def slug(tool: str) -> str:
    """A tool's name as BENCH_TOOLS, folders and repositories write it: `skopeo sync` is `skopeo-sync`."""
    return re.sub(r"[^a-z0-9]+", "-", tool.lower()).strip("-")


def plan_for(tool: str, s: Setup, run: str) -> Plan:
    repo = f"{run}/{slug(tool)}"
    if tool == ENGINE_TOOL:
        return image_promoter_plan(s, ENGINE, repo)
    if tool == REGSYNC:
        return regsync_plan(s, repo, missing=False)
    if tool == REGSYNC_MISSING:
        return regsync_plan(s, repo, missing=True)
    if tool == SKOPEO_SYNC:
        return skopeo_sync_plan(s, repo)
    raise ValueError(tool)


# ---------------------------------------------------------------- a benchmark run


@dataclass
class Phase:
    """One measured phase (backfill or idle) of one tool."""

    run: Run
    source: Requests
    target: Requests
    others_cpu: float  # CPUs kept busy meanwhile by processes other than the tool, its registries and the harness

    @property
    def requests(self) -> Requests:
        return self.source + self.target


class MirrorBench:
    def __init__(self) -> None:
        self.quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        self.tags = int(os.environ.get("BENCH_TAGS") or (100 if self.quick else 1000))
        self.reps = int(os.environ.get("BENCH_REPS", "3"))
        self.keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
        self.tools = list(TOOLS)
        if os.environ.get("BENCH_TOOLS"):
            wanted = [t.strip() for t in os.environ["BENCH_TOOLS"].split(",") if t.strip()]
            unknown = [t for t in wanted if t not in TOOLS and t not in map(slug, TOOLS)]
            if unknown:
                fail(f"BENCH_TOOLS names {unknown}; the tools are {', '.join(map(slug, TOOLS))}")
            self.tools = [t for t in TOOLS if t in wanted or slug(t) in wanted]
        self.env = load_env()
        self.own = OwnRegistries(self.env, WORK / "registries")
        self.bin = Path(self.env["PROMOTER_TEST_BIN"])
        self.run_id = time.strftime("%Y%m%d%H%M%S")
        self.results: dict[tuple[str, str], list[Phase]] = {}
        self.started = dt.datetime.now(dt.timezone.utc)
        self.load_start = os.getloadavg()

    # -- setup

    def credentials(self) -> tuple[str, str]:
        """The world's ECR credentials: the harness's registries are made from its configuration."""
        docker = json.loads((Path(self.env["PROMOTER_TEST_DOCKER_CONFIG"]) / "config.json").read_text())
        user, _, password = base64.b64decode(docker["auths"][self.env["PROMOTER_TEST_ECR_REGISTRY"]]["auth"]) \
            .decode().partition(":")
        return user, password

    def client(self, host: str) -> Client:
        return Client(host, base64.b64encode(":".join(self.auth).encode()).decode(), self.env["PROMOTER_TEST_CA"])

    def start_registry(self, name: str) -> tuple[str, subprocess.Popen, AccessLog]:
        host, _ = self.own.start(name, access_log=True)
        proc = self.own.procs[-1]
        return host, proc, AccessLog(self.own.dirs[-1] / "registry.log", self.client(host))

    def stop_registry(self, proc: subprocess.Popen) -> None:
        i = self.own.procs.index(proc)
        folder = self.own.dirs[i]
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        del self.own.procs[i], self.own.dirs[i]
        if not self.keep:
            shutil.rmtree(folder, ignore_errors=True)

    def setup(self) -> None:
        for tool in (SKOPEO_SYNC.split()[0], REGSYNC):
            if not (self.bin / tool).exists():
                fail(f"{self.bin / tool} is missing: run `make tools`")
        if ENGINE_TOOL in self.tools:
            require_mirror_subcommand(ENGINE)  # before minutes of seeding, not after
        WORK.mkdir(parents=True, exist_ok=True)
        self.auth = self.credentials()
        self.source_host, proc, self.source_log = self.start_registry("source")
        self.source_pid = proc.pid
        self.images = source_images(self.tags)
        log(f"seeding {self.tags} tags into {self.source_host}/{SOURCE_REPO}")
        started = time.monotonic()
        seed(lambda: self.client(self.source_host), SOURCE_REPO, self.images)
        source = self.client(self.source_host)
        listed = sorted(source.tags(SOURCE_REPO))
        if listed != sorted(i.tag for i in self.images):
            fail(f"the source holds {len(listed)} tags after seeding, not the {self.tags} pushed")
        log(f"seeded in {time.monotonic() - started:.1f}s")

    # -- running

    def check_target(self, target: Client, repo: str) -> str:
        """What is wrong with the target after a backfill ('' when every tag has the source's digest)."""
        want = {i.tag: i.digest for i in self.images}
        got = set(target.tags(repo))
        if got != set(want):
            missing, extra = sorted(set(want) - got), sorted(got - set(want))
            return f"the target has {len(got)} of {len(want)} tags (missing e.g. {missing[:3]}, extra {extra[:3]})"
        wrong = [t for t in sorted(want) if target.digest(repo, t) != want[t]]
        if wrong:
            return f"{len(wrong)} tags have another digest at the target than at the source, e.g. {wrong[:3]}"
        return ""

    def phase(self, tool: str, name: str, cmd: Command, target_log: AccessLog, target_pid: int) -> Phase:
        src0, tgt0 = self.source_log.offset(), target_log.offset()
        cpu = CpuAccount([self.source_pid, target_pid])
        run = measure([cmd], f"{tool} {name}", self.source_pid)
        others = cpu.others()
        return Phase(run, self.source_log.since(src0), target_log.since(tgt0), others)

    def one(self, tool: str, rep: int) -> None:
        name = f"{slug(tool)}-r{rep}"
        target_host, proc, target_log = self.start_registry(f"target-{name}")
        folder = WORK / "runs" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            s = Setup(self.bin, self.env["PROMOTER_TEST_CA"], self.auth, self.source_host, SOURCE_REPO,
                      target_host, folder)
            plan = plan_for(tool, s, f"mirror-{self.run_id}")
            target = self.client(target_host)
            for phase_name, cmd in (("backfill", plan.backfill), ("idle", plan.idle)):
                result = self.phase(tool, phase_name, cmd, target_log, proc.pid)
                if result.run.ok:
                    problem = self.check_target(target, plan.target_repo)
                    if problem:
                        result.run.ok, result.run.error = False, f"after the {phase_name}: {problem}"
                        log(f"  FAILED {tool} {phase_name}: {problem}")
                self.results.setdefault((tool, phase_name), []).append(result)
                r = result.requests
                log(f"  {tool} {phase_name}: {result.run.wall:.2f}s, {r.total} requests "
                    f"({result.source.total} source, {result.target.total} target)"
                    + f"; other work kept {result.others_cpu:.2f} CPUs busy meanwhile"
                    + ("" if result.run.ok else " FAILED"))
                if not result.run.ok:
                    break
        finally:
            self.stop_registry(proc)
            if not self.keep:
                shutil.rmtree(folder, ignore_errors=True)

    def run(self) -> None:
        t0 = time.monotonic()
        # Stopped with SIGTERM, still stop the harness's registries (the finally below).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self.setup()
            for rep in range(1, self.reps + 1):
                k = (rep - 1) % len(self.tools)
                order = self.tools[k:] + self.tools[:k]
                log(f"repetition {rep}/{self.reps}: {', '.join(order)}")
                for tool in order:
                    self.one(tool, rep)
        finally:
            self.own.stop(self.keep)
        self.elapsed = time.monotonic() - t0
        self.write()

    # -- results

    def ok(self, tool: str, phase: str) -> list[Phase]:
        return [p for p in self.results.get((tool, phase), []) if p.run.ok]

    def median(self, tool: str, phase: str, value) -> float | None:
        runs = self.ok(tool, phase)
        return statistics.median(value(p) for p in runs) if runs else None

    def table(self) -> str:
        head = ["tool", "phase", "time s", "× fastest peer", "requests", *KINDS, "of them 401", "source / target",
                "CPU s", "peak RSS MiB", "runs ok"]
        rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for phase in PHASES:
            best = self.fastest(phase)
            for tool in self.tools:
                runs = self.results.get((tool, phase), [])
                ok = self.ok(tool, phase)
                if not ok:
                    error = runs[0].run.error if runs else "not run (an earlier phase failed)"
                    rows.append(f"| {tool} | {phase} | failed: {error[:160].replace('|', '/')} |"
                                + " |" * (len(head) - 3))
                    continue

                def med(value):
                    return statistics.median(value(p) for p in ok)

                wall = med(lambda p: p.run.wall)
                ratio = f"{wall / best[1]:.2f}" if best else "—"
                cells = [tool, phase, f"{wall:.2f}", ratio, f"{med(lambda p: p.requests.total):.0f}",
                         *[f"{med(lambda p, k=k: p.requests.by_kind[k]):.0f}" for k in KINDS],
                         f"{med(lambda p: p.requests.challenges):.0f}",
                         f"{med(lambda p: p.source.total):.0f} / {med(lambda p: p.target.total):.0f}",
                         f"{med(lambda p: p.run.cpu):.2f}", f"{max(p.run.maxrss_kib for p in ok) / 1024:.0f}",
                         f"{len(ok)}/{len(runs)}"]
                rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def fastest(self, phase: str, peers: list[str] = CHECKING_PEERS) -> tuple[str, float] | None:
        """The checking peer with the shortest median time in `phase`, and that time."""
        times = {p: t for p in peers if p in self.tools and (t := self.median(p, phase, lambda x: x.run.wall))}
        if not times:
            return None
        best = min(times, key=times.__getitem__)
        return best, times[best]

    def goals(self) -> list[str]:
        out = []
        fb, fi = self.fastest("backfill"), self.fastest("idle")
        for peer in [p for p in PEERS if p in self.tools]:
            b = self.median(peer, "backfill", lambda x: x.run.wall)
            i = self.median(peer, "idle", lambda x: x.requests.total)
            it = self.median(peer, "idle", lambda x: x.run.wall)
            if b is not None and i is not None:
                out.append(f"- {peer}: backfill {b:.2f} s; idle interval {i:.0f} requests in {it:.2f} s")
        ours_b = self.median(ENGINE_TOOL, "backfill", lambda x: x.run.wall)
        ours_i = self.median(ENGINE_TOOL, "idle", lambda x: x.requests.total)
        if fb and fi:
            budget = self.median(fi[0], "idle", lambda x: x.requests.total) / IDLE_REQUEST_GOAL
            shown = f"{budget:.{0 if budget >= 10 else 1}f}"
            out.append(f"- What the goals allow {ENGINE_TOOL} on this run: an idle interval of at most {shown} "
                       f"requests ({fi[0]}'s / {IDLE_REQUEST_GOAL}), a backfill of at most {fb[1]:.2f} s ({fb[0]}'s)")
        if ENGINE_TOOL not in self.tools:
            out.append(f"- {ENGINE_TOOL}: **not measured in this run** (BENCH_TOOLS left it out); the goals "
                       f"cannot be judged yet")
        elif ours_b is None or ours_i is None:
            out.append(f"- {ENGINE_TOOL}: **failed** (see the table); the goals are not met")
        else:
            out.append(f"- {ENGINE_TOOL}: backfill {ours_b:.2f} s; idle interval {ours_i:.0f} requests in "
                       f"{self.median(ENGINE_TOOL, 'idle', lambda x: x.run.wall):.2f} s")
            if fi:
                peer_i = self.median(fi[0], "idle", lambda x: x.requests.total)
                ratio = peer_i / ours_i if ours_i else float("inf")
                out.append(f"- Idle interval: {ratio:.1f}× fewer requests than the fastest peer ({fi[0]}: "
                           f"{peer_i:.0f} against {ours_i:.0f}; goal ≥ {IDLE_REQUEST_GOAL}×: "
                           f"{'met' if ratio >= IDLE_REQUEST_GOAL else 'not met'})")
                fewest = min((p for p in CHECKING_PEERS if p in self.tools
                              and self.median(p, "idle", lambda x: x.requests.total) is not None),
                             key=lambda p: self.median(p, "idle", lambda x: x.requests.total))
                if fewest != fi[0]:
                    n = self.median(fewest, "idle", lambda x: x.requests.total)
                    out.append(f"  (against the checking peer with the fewest idle requests, {fewest}: "
                               f"{n / ours_i if ours_i else float('inf'):.1f}×)")
            if fb:
                ratio = ours_b / fb[1]
                out.append(f"- Backfill: {ratio:.2f}× the fastest peer's time ({fb[0]}: {fb[1]:.2f} s; "
                           f"goal ≤ 1.00×: {'met' if ratio <= 1.0 else 'not met'})")
        if REGSYNC_MISSING in self.tools and ENGINE_TOOL in self.tools and ours_i is not None:
            m = self.median(REGSYNC_MISSING, "idle", lambda x: x.requests.total)
            if m is not None:
                out.append(f"- `{REGSYNC_MISSING}` idles on {m:.0f} requests (two tag lists) because it never looks "
                           f"at a tag both sides have: a tag moved at the source, or changed at the target, goes "
                           f"unseen. It is not a peer for the goals; image-promoter's idle interval makes "
                           f"{ours_i:.0f}.")
        return out

    def machine(self) -> list[str]:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "unknown")
        mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")), "0")
        version = tool_version
        rev = version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        regsync = version([str(self.bin / "regsync"), "version", "--format", "{{.VCSTag}}"])
        # Phases under a second (an idle regsync --missing) are too short to say anything.
        others = [p.others_cpu for phases in self.results.values() for p in phases if p.run.wall >= 1]
        busy = (f"; while the tools ran, other processes (not the tool, its registries or the harness) kept "
                f"{statistics.median(others):.2f} of the {os.cpu_count()} CPUs busy (median over the phases; "
                f"at most {max(others):.2f})") if others else ""
        shared = bool(others) and statistics.median(others) > 0.15
        return [
            f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; memory {int(mem) / 1024 / 1024:.0f} GiB; "
            f"kernel {platform.release()}",
            (f"- {version([str(ENGINE), '--version'])} ({ENGINE}, worktree at {rev})" if ENGINE_TOOL in self.tools
             else f"- image-promoter: not run (worktree at {rev})")
            + f"; regsync {regsync}; {version([str(self.bin / 'skopeo'), '--version'])}; registries: CNCF "
            f"distribution {version([str(self.bin / 'registry'), '--version']).split()[-1]} (filesystem storage, "
            f"TLS, htpasswd, access log on)",
            f"- Run: {self.started:%Y-%m-%d %H:%M} UTC, {self.elapsed / 60:.0f} min in all, {self.reps} "
            f"repetition(s); 1-minute load average {self.load_start[0]:.1f} before it started" + busy,
            *(["- **The machine was shared**: other work competed for the CPUs during the run, so times are noisy",
               "  and on the slow side; request counts do not depend on it."] if shared else []),
        ]

    def markdown(self) -> str:
        quick = " (BENCH_QUICK: a small run, for trying the harness — not the numbers to quote)" if self.quick else ""
        cmd = "make bench-mirror" + (" BENCH_QUICK=1" if self.quick else "") + (
            f" BENCH_REPS={self.reps}" if self.reps != 3 else "")
        for var in ("BENCH_TOOLS", "BENCH_TAGS"):
            if os.environ.get(var):
                cmd = f"{var}='{os.environ[var]}' " + cmd
        return "\n".join([
            "# Benchmarks: the RegistryMirror against regsync and skopeo sync" + quick,
            "",
            "Written by `bench/mirror.py`, except the hand-written notes at the end (which it keeps): run it",
            "again rather than editing the numbers.",
            "",
            "```",
            cmd,
            "```",
            "",
            f"A source repository of {self.tags} tags ({self.tags} distinct single-platform OCI images: two base "
            "layers shared by all, one 2 KiB layer and a config of",
            "their own; releases, release candidates, commit tags, `latest`) is mirrored into an empty repository",
            "(**backfill**), then the same command runs again with nothing changed (**idle**: one interval of a",
            "mirror that is in sync). Source and target are two registries the harness starts from the test world's",
            "registry configuration (CNCF distribution, TLS, htpasswd) with their access logs on; **requests are",
            "counted by the registries themselves** from those logs, for every tool the same way (no proxy in",
            "between), source and target together, 401 challenges included. Each tool gets a fresh, empty target",
            f"registry. Median of {self.reps} interleaved repetition(s); \"× fastest peer\" is over the faster of",
            "`regsync` and `skopeo sync` in that phase. CPU s and peak RSS are the tool's own (GNU time).",
            "",
            "## Machine",
            "",
            *self.machine(),
            "",
            "## Results",
            "",
            self.table(),
            "",
            "## Against the goals of issue 13",
            "",
            *self.goals(),
            "",
            "## How each tool runs",
            "",
            f"- `{ENGINE_TOOL}`: `image-promoter mirror -f mirror.yaml --config promoter.yaml --state state.json "
            "--json`, both phases; the RegistryMirror selects every tag, `maxCopiesPerSync: 10000`; the state",
            "  file carries the ledger from the backfill to the idle run. Both registries are declared `generic`.",
            f"- `{REGSYNC}`: `regsync once -c regsync.yaml` with one `type: repository` sync, defaults otherwise",
            "  (tags of one repository are processed one after another; `parallel` applies across syncs).",
            f"- `{REGSYNC_MISSING}`: the same with `--missing`, which copies only tags absent at the target.",
            f"- `{SKOPEO_SYNC}`: `skopeo sync --all --preserve-digests --src docker --dest docker SRC DEST`.",
            "",
        ])

    def write(self) -> None:
        default = REPO / "docs" / "benchmarks-mirror.md" if not self.quick else \
            REPO / "target" / "bench" / "benchmarks-mirror-quick.md"
        out = Path(os.environ.get("BENCH_OUT") or default)
        raw = WORK / f"results-{self.run_id}.json"
        raw.write_text(json.dumps({
            f"{tool} {phase}": [{"wall": p.run.wall, "cpu": p.run.cpu, "maxrss_kib": p.run.maxrss_kib,
                                 "ok": p.run.ok, "error": p.run.error, "source": p.source.by_kind,
                                 "target": p.target.by_kind, "challenges": p.requests.challenges,
                                 "others_cpu": p.others_cpu}
                                for p in phases]
            for (tool, phase), phases in self.results.items()}, indent=1) + "\n")
        md = self.markdown()
        if out.exists() and HAND_WRITTEN in out.read_text():
            md += "\n" + HAND_WRITTEN + out.read_text().split(HAND_WRITTEN, 1)[1]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        print(md)
        log(f"wrote {out} (raw runs: {raw})")
        failed = [f"{t} {p}" for (t, p), phases in self.results.items() if not any(x.run.ok for x in phases)]
        if failed:
            fail(f"failed: {', '.join(failed)} (see {out})")


def main() -> None:
    if len(sys.argv) > 1:
        print(__doc__)
        sys.exit(2)
    MirrorBench().run()


if __name__ == "__main__":
    main()
