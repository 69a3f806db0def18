#!/usr/bin/env python3
"""Benchmark the copy engine against skopeo, crane and regctl (`make bench`).

Issue 5 sets the copy engine numeric targets: large copies within 5 % of the
registry's own single-PUT ingest rate and 10 % faster than the fastest peer, peak
RSS at most 64 MiB, a re-copy that makes at most one manifest request per tag, a
50-image batch twice as fast as the fastest peer, and three targets that read the
source once in at most 1.2x the single-target time. This harness measures exactly
those, on the test world of `make env-up`, and writes the table to
docs/benchmarks.md together with the machine it ran on and the command that
produced it.

How a run goes:
  1. Inputs are OCI layouts built by ../shared/tools/mkimage.py (random,
     incompressible layers, fixed seeds) under target/bench/layouts/ and reused
     by later runs (those of both modes, quick and full, are kept; others are deleted).
  2. They are pushed once per run with skopeo into the Quay registry of the test
     world (`bench-src/...`). The ECR registry is the target; every copy goes
     into a fresh repository (`bench-<run>/<case>/<tool>-r<rep>`), so every copy
     is a real copy; a re-copy goes into the same repository a second time.
  3. For the three-target case the harness starts two more registries of its own
     (same binary, TLS certificate and htpasswd as the ECR one), so the three
     targets are three registries and cross-repository mounts cannot stand in
     for fan-out.
  4. Every measured process runs under GNU time (`/usr/bin/time -f %M`, Debian
     package `time`), which reports the kernel's peak RSS of the tool alone and
     its CPU time. The bytes a run made the source registry send are read from
     that registry process's /proc/PID/io (wchar: a Go server writes responses
     with write(2)), the same way for every tool, so "reads the source once" is
     measured rather than taken from the tool's own report.
  5. Repetitions are interleaved: each repetition runs every tool once per case,
     and the tool order rotates from one repetition to the next. Medians are
     reported, with the ratio to the fastest peer.
  6. After each run the target repositories are deleted from the registry's
     storage directory (so skopeo's persistent blob-info cache cannot turn a
     later copy into a cross-repository mount); at the end the harness removes
     the source repositories and the bench blobs it put into the test world's
     registries, and its own registries entirely. BENCH_KEEP=1 keeps them.

The limit is the target registry's own ingest rate: curl PUTs the largest blob
in one monolithic HTTP/1.1 request from the page cache (plus, for context, curl
GET from the source piped into curl PUT: the cheapest streamed copy). The
three-target case has a limit of its own: the same PUT to each of the three
registries at the same time. The engine sees every registry as `generic`, as
the peers do; the "image-promoter (ECR parts)" rows declare the target `kind:
ecr` (8 MiB PATCH parts), the way the test world's promoter.yaml does.

The batch is one `image-promoter copy --batch FILE` process for the engine (the
file is written under target/bench/config/), one process per image for the
peers, and one `skopeo sync` of the whole source repository: skopeo's own batch
mode, a peer row of its own.

Environment: BENCH_QUICK=1 (64 MiB images, 20-image batch), BENCH_REPS (3),
BENCH_CASES / BENCH_TOOLS (comma lists, to run a subset), BENCH_OUT (where the
Markdown goes; docs/benchmarks.md for a full run, target/bench/benchmarks-quick.md
for a quick one), BENCH_KEEP=1, BENCH_ENGINE (another engine binary than
target/release/image-promoter).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "target" / "bench"
TESTENV = REPO / "target" / "testenv"
MKIMAGE = REPO.parent / "shared" / "tools" / "mkimage.py"
ENGINE = Path(os.environ.get("BENCH_ENGINE") or REPO / "target" / "release" / "image-promoter")

MiB = 1 << 20
GiB = 1 << 30

ENGINE_TOOL = "image-promoter"
ENGINE_ECR_TOOL = "image-promoter (ECR parts)"
PEERS = ["skopeo", "crane", "regctl"]
SKOPEO_SYNC = "skopeo sync"  # skopeo's batch mode: the batch case only
ALL_PEERS = [*PEERS, SKOPEO_SYNC]  # every peer row, for "the fastest peer"
LIMIT_PUT = "registry: one PUT"
LIMIT_PIPE = "curl GET piped to curl PUT"
LIMIT_PUT3 = "registry: three PUTs at once"
LIMITS = [LIMIT_PUT, LIMIT_PIPE, LIMIT_PUT3]

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fail(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- measurement


GNU_TIME = "/usr/bin/time"


def registry_pid(config: Path) -> int | None:
    """The pid of the registry serving `config`, to read what it sent (/proc/PID/io)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[-2] == str(config).encode() and argv[1] == b"serve":
            return int(proc.name)
    return None


def bytes_written(pid: int | None) -> int | None:
    """wchar of a process: a Go registry writes its responses with write(2), so this counts what it sent."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def process_cpu(pid: int | None) -> float:
    """User + system seconds a live process has used so far (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuAccount:
    """How much CPU processes other than the benchmark's used while it measured.

    The machine's busy time (/proc/stat) minus this harness, every tool it ran, and the
    registries it measured against: what is left is someone else's (or the rest of the
    test world's) work competing for the same CPUs.
    """

    def __init__(self, pids: list[int | None]):
        self.pids = pids
        self.start = self.sample()

    def sample(self) -> tuple[float, float, float]:
        import resource

        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        busy = (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")
        mine = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))
        mine += sum(process_cpu(p) for p in self.pids)
        return time.monotonic(), busy, mine

    def others(self) -> float:
        """Average CPUs busy with other work since the start."""
        t1, busy1, mine1 = self.sample()
        t0, busy0, mine0 = self.start
        return max(0.0, (busy1 - busy0) - (mine1 - mine0)) / max(t1 - t0, 1e-9)


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    """One measured run of one tool in one case (one or more processes, one after another)."""

    wall: float
    maxrss_kib: int  # the largest of the processes' peak RSS
    cpu: float  # user + system seconds of the tool's processes
    source_sent: int | None  # bytes the source registry sent meanwhile
    ok: bool
    error: str = ""
    reports: list[dict] = field(default_factory=list)  # the engine's CopyReports, one per image


def engine_reports(stdout: str) -> tuple[list[dict], str]:
    """The CopyReports in the engine's `--output json`, and what failed, if anything did.

    `copy SRC TARGET...` prints one CopyReport. `copy --batch FILE` prints
    {"images": [{"source": ..., "report": CopyReport} or {"source": ..., "error": {"reason", "message"}}],
     "succeeded": n, "failed": n, "duration_ms": n}: its reports are those of the images that
    succeeded, and a batch with a failed image is a failed run, reported by its first error
    (as is a report with a failed target).
    """
    doc = json.loads(stdout)
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    if "images" in doc:
        images = doc["images"]
        reports = [i["report"] for i in images if "report" in i]
        failures = [i for i in images if "error" in i]
        failed = max(doc.get("failed", 0), len(failures))
        if failures or failed:
            first = failures[0] if failures else {}
            err = first.get("error") or {}
            return reports, (f"{failed} of {len(images)} images of the batch failed; the first, "
                             f"{first.get('source', '?')}: {err.get('reason', '?')}: {err.get('message', '')}")
    else:
        reports = [doc]
    # A report can also carry a failed target (TargetReport.error).
    for r in reports:
        for t in r.get("targets", []):
            if t.get("error"):
                err = t["error"]
                return reports, (f"target {t.get('repository', '?')} of {r.get('source', '?')} failed: "
                                 f"{err.get('reason', '?')}: {err.get('message', '')}")
    return reports, ""


def measure(commands: list[Command], label: str, source_pid: int | None, engine_json: bool = False) -> Run:
    """Run the commands one after another, each under GNU time, and say what they cost.

    Peak RSS comes from GNU time (wait4's ru_maxrss of the tool alone: a wrapper forked
    from Python would report Python's own RSS as a floor).
    """
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        sent_before = bytes_written(source_pid)
        wall, rss, cpu, error, reports = 0.0, 0, 0.0, "", []
        for i, cmd in enumerate(commands):
            usage, out, err = (Path(tmp) / f"{name}{i}" for name in ("time", "out", "err"))
            with open(out, "wb") as stdout, open(err, "wb") as stderr:
                start = time.perf_counter()
                rc = subprocess.run([GNU_TIME, "-f", "%M %U %S", "-o", str(usage), *cmd.argv],
                                    stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                    env={**os.environ, **cmd.env}).returncode
                wall += time.perf_counter() - start
            fields = usage.read_text().strip().splitlines()[-1].split()
            rss, cpu = max(rss, int(fields[0])), cpu + float(fields[1]) + float(fields[2])
            found, failure = [], ""
            if engine_json:
                try:
                    found, failure = engine_reports(out.read_text(errors="replace"))
                except (ValueError, TypeError, AttributeError, KeyError) as e:
                    if rc == 0:
                        failure = f"no readable JSON report on stdout ({e!r})"
            if rc != 0 or failure:
                tail = err.read_text(errors="replace").strip()[-800:] or out.read_text(errors="replace").strip()[-800:]
                shown = " ".join([Path(cmd.argv[0]).name, *cmd.argv[1:3]])
                error = f"exit {rc} from `{shown} …`: {failure or tail}"
                log(f"  FAILED {label}: {error}")
                break
            reports += found
        sent_after = bytes_written(source_pid)
        sent = sent_after - sent_before if sent_before is not None and sent_after is not None else None
        return Run(wall, rss, cpu, sent, not error, error, reports)


# ---------------------------------------------------------------- the world


def load_env() -> dict[str, str]:
    path = TESTENV / "env"
    if not path.exists():
        fail(f"{path} is missing: run `make env-up` first")
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value.strip().strip('"')
    for key in ("PROMOTER_TEST_QUAY_REGISTRY", "PROMOTER_TEST_ECR_REGISTRY", "PROMOTER_TEST_CA",
                "PROMOTER_TEST_DOCKER_CONFIG", "PROMOTER_TEST_BIN"):
        if key not in env:
            fail(f"{path} lacks {key}: run `make env-up`")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A registry of the test world (or one this harness started), seen from here."""

    def __init__(self, host: str, auth_b64: str, ca: str, storage: Path | None):
        self.host, self.auth_b64, self.storage = host, auth_b64, storage
        self.ctx = ssl.create_default_context(cafile=ca)

    def request(self, method: str, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
        return self.exchange(method, path, headers)[0]

    def exchange(self, method: str, path: str, headers: dict | None = None) -> tuple[http.client.HTTPResponse, bytes]:
        conn = http.client.HTTPSConnection(self.host, context=self.ctx, timeout=60)
        hdrs = {"Authorization": f"Basic {self.auth_b64}"}
        hdrs.update(headers or {})
        conn.request(method, path, headers=hdrs)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        return resp, body

    def tags(self, repo: str) -> list[str]:
        resp, body = self.exchange("GET", f"/v2/{repo}/tags/list")
        if resp.status != 200:
            fail(f"GET {self.host}/v2/{repo}/tags/list: HTTP {resp.status}")
        return json.loads(body).get("tags") or []

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", {"Accept": MANIFEST_ACCEPT})
        return resp.getheader("Docker-Content-Digest") if resp.status == 200 else None

    def start_upload(self, repo: str) -> str:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if resp.status != 202:
            fail(f"POST upload to {self.host}/{repo}: HTTP {resp.status}")
        loc = resp.getheader("Location")
        return urllib.parse.urljoin(f"https://{self.host}/", loc)

    def delete_repo(self, repo: str) -> None:
        """Forget a repository by removing it from the storage directory (the registry has no API for it)."""
        if self.storage is None:
            return
        path = self.storage / "docker" / "registry" / "v2" / "repositories" / repo
        shutil.rmtree(path, ignore_errors=True)

    def delete_blobs(self, digests: set[str]) -> None:
        if self.storage is None:
            return
        for d in digests:
            hexd = d.split(":", 1)[1]
            shutil.rmtree(self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd,
                          ignore_errors=True)


def registry_config(host: str) -> tuple[Path, Path] | tuple[None, None]:
    """The config file and storage directory of the test world's registry at `host`."""
    for cfg in (TESTENV / "registries").glob("*/config.yml"):
        try:
            data = json.loads(cfg.read_text())
        except ValueError:
            continue
        if data.get("http", {}).get("addr") == host:
            return cfg, Path(data["storage"]["filesystem"]["rootdirectory"])
    return None, None


class OwnRegistries:
    """Registries this harness starts (the three-target case; bench/mirror.py's counted ones), and stops at exit."""

    def __init__(self, env: dict[str, str], folder: Path | None = None):
        self.env = env
        self.folder = folder or WORK / "registries"
        self.procs: list[subprocess.Popen] = []
        self.dirs: list[Path] = []

    def start(self, name: str, access_log: bool = False) -> tuple[str, Path]:
        """Start a registry like the world's ECR one; with `access_log`, it logs every request (registry.log)."""
        ecr_cfg = None
        for cfg in (TESTENV / "registries").glob("*/config.yml"):
            data = json.loads(cfg.read_text())
            if data.get("http", {}).get("addr") == self.env["PROMOTER_TEST_ECR_REGISTRY"]:
                ecr_cfg = data
        if ecr_cfg is None:
            fail("cannot find the ECR registry's config.yml under target/testenv/registries")
        folder = self.folder / name
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "storage").mkdir(parents=True)
        port = free_port()
        cfg = json.loads(json.dumps(ecr_cfg))
        cfg["storage"]["filesystem"]["rootdirectory"] = str(folder / "storage")
        cfg["http"]["addr"] = f"127.0.0.1:{port}"
        cfg["http"]["secret"] = base64.b64encode(os.urandom(24)).decode()
        cfg.setdefault("log", {})["accesslog"] = {"disabled": not access_log}
        (folder / "config.yml").write_text(json.dumps(cfg, indent=2) + "\n")
        log_file = open(folder / "registry.log", "wb")
        proc = subprocess.Popen(
            [str(Path(self.env["PROMOTER_TEST_BIN"]) / "registry"), "serve", str(folder / "config.yml")],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"},
        )
        self.procs.append(proc)
        self.dirs.append(folder)
        host = f"127.0.0.1:{port}"
        ctx = ssl.create_default_context(cafile=self.env["PROMOTER_TEST_CA"])
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                fail(f"registry {name} exited: see {folder / 'registry.log'}")
            try:
                conn = http.client.HTTPSConnection(host, context=ctx, timeout=2)
                conn.request("GET", "/v2/")
                if conn.getresponse().status == 401:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail(f"registry {name} did not answer on {host} within 30 s")
            time.sleep(0.1)
        return host, folder / "storage"

    def stop(self, keep: bool) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if not keep:
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- inputs


@dataclass
class Input:
    """One source image (or, for the batch, many tags of one repository)."""

    key: str
    layers: int
    layer_size: int
    platforms: list[str]
    seed: int
    tags: list[str]

    @property
    def dirname(self) -> str:
        return f"{self.key}-{len(self.platforms)}p-{self.layers}x{self.layer_size // 1024}K-s{self.seed}"

    @property
    def bytes_per_tag(self) -> int:
        return self.layers * self.layer_size * len(self.platforms)


def inputs_for(quick: bool) -> dict[str, Input]:
    size = 64 * MiB if quick else GiB
    n_small = 20 if quick else 50
    small = 1 * MiB if quick else 5 * MiB
    return {
        "big8": Input("big8", 8, size // 8, ["linux/amd64"], 101, ["v1"]),
        "multi": Input("multi", 4, size // 8, ["linux/amd64", "linux/arm64"], 102, ["v1"]),
        "single": Input("single", 1, size, ["linux/amd64"], 103, ["v1"]),
        "small": Input("small", 1, small, ["linux/amd64"], 104, [f"t{i:02d}" for i in range(n_small)]),
    }


def build_inputs(inputs: dict[str, Input]) -> None:
    if not MKIMAGE.exists():
        fail(f"{MKIMAGE} is missing: the harness expects the shared tools beside the checkout "
             f"(../shared/tools/mkimage.py)")
    layouts = WORK / "layouts"
    layouts.mkdir(parents=True, exist_ok=True)
    # Layouts of either mode are kept (a quick try must not cost the next full run
    # 3.5 GiB of rebuilding); anything else is a leftover of older parameters.
    known = {i.dirname for quick in (False, True) for i in inputs_for(quick).values()}
    for d in layouts.iterdir():
        if d.name not in known:
            log(f"removing unused layout {d.name}")
            shutil.rmtree(d)
    for inp in inputs.values():
        out = layouts / inp.dirname
        if (out / ".complete").exists():
            continue
        shutil.rmtree(out, ignore_errors=True)
        log(f"building layout {inp.dirname} ({len(inp.tags)} tag(s), {inp.bytes_per_tag / MiB:.0f} MiB each)")
        for n, tag in enumerate(inp.tags):
            argv = [sys.executable, str(MKIMAGE), str(out), "--tag", tag, "--layers", str(inp.layers),
                    "--layer-size", str(inp.layer_size), "--gzip-level", "0", "--seed", str(inp.seed * 1000 + n)]
            for p in inp.platforms:
                argv += ["--platform", p]
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        (out / ".complete").write_text("")


def layout_digests(inp: Input) -> set[str]:
    return {"sha256:" + p.name for p in (WORK / "layouts" / inp.dirname / "blobs" / "sha256").iterdir()
            if not p.name.startswith(".")}


def largest_blob(inp: Input) -> tuple[Path, str, int]:
    blobs = [p for p in (WORK / "layouts" / inp.dirname / "blobs" / "sha256").iterdir() if not p.name.startswith(".")]
    p = max(blobs, key=lambda b: b.stat().st_size)
    return p, "sha256:" + p.name, p.stat().st_size


# ---------------------------------------------------------------- tools


class Tools:
    """How each tool is invoked: same inputs, same registries, each with its default settings."""

    def __init__(self, env: dict[str, str], extra_hosts: list[str]):
        self.env = env
        self.bin = Path(env["PROMOTER_TEST_BIN"])
        cfg = WORK / "config"
        shutil.rmtree(cfg, ignore_errors=True)
        (cfg / "certs").mkdir(parents=True)
        shutil.copy(env["PROMOTER_TEST_CA"], cfg / "certs" / "ca.crt")
        self.certs = cfg / "certs"
        # One docker config for every tool: the test world's, plus the harness's registries
        # (same htpasswd as the ECR one, so the same credentials).
        docker = json.loads((Path(env["PROMOTER_TEST_DOCKER_CONFIG"]) / "config.json").read_text())
        ecr_auth = docker["auths"][env["PROMOTER_TEST_ECR_REGISTRY"]]
        for h in extra_hosts:
            docker["auths"][h] = dict(ecr_auth)
        (cfg / "docker").mkdir()
        self.docker_dir = cfg / "docker"
        (self.docker_dir / "config.json").write_text(json.dumps(docker, indent=2))
        self.auths = {h: a["auth"] for h, a in docker["auths"].items()}
        # The engine: every registry declared `generic` (they are plain distribution
        # registries, as the peers see them); a second file declares the ECR target as
        # `kind: ecr`, the way the test world's promoter.yaml does, which uploads in
        # 8 MiB PATCH parts.
        hosts = [env["PROMOTER_TEST_QUAY_REGISTRY"], env["PROMOTER_TEST_ECR_REGISTRY"], *extra_hosts]
        self.engine_cfg = cfg / "promoter.yaml"
        self.engine_ecr_cfg = cfg / "promoter-ecr.yaml"
        for path, ecr_kind in ((self.engine_cfg, False), (self.engine_ecr_cfg, True)):
            lines = ["# Written by bench/bench.py for one benchmark run.", "registries:"]
            for h in hosts:
                kind = "ecr" if ecr_kind and h == env["PROMOTER_TEST_ECR_REGISTRY"] else "generic"
                lines += [f'  - host: "{h}"', f"    kind: {kind}", f"    caFile: {env['PROMOTER_TEST_CA']}",
                          "    auth:", "      dockerConfig:", f"        path: {self.docker_dir / 'config.json'}"]
            path.write_text("\n".join(lines) + "\n")
        # regctl keeps TLS settings in its own config file: point it at the CA once.
        self.regctl_home = cfg / "regctl"
        self.regctl_home.mkdir()
        for h in hosts:
            subprocess.run([str(self.bin / "regctl"), "registry", "set", h, "--cacert",
                            Path(env["PROMOTER_TEST_CA"]).read_text(), "--skip-check"],
                           env=self.regctl_env(), check=True, capture_output=True)

    def regctl_env(self) -> dict[str, str]:
        return {**os.environ, **self.regctl_vars()}

    def regctl_vars(self) -> dict[str, str]:
        return {"HOME": str(self.regctl_home), "REGCTL_CONFIG": str(self.regctl_home / "config.json"),
                "DOCKER_CONFIG": str(self.docker_dir)}

    def engine_config(self, tool: str) -> Path:
        return self.engine_ecr_cfg if tool == ENGINE_ECR_TOOL else self.engine_cfg

    def skopeo_options(self) -> list[str]:
        return ["--authfile", str(self.docker_dir / "config.json"),
                "--src-cert-dir", str(self.certs), "--dest-cert-dir", str(self.certs)]

    def copy(self, tool: str, src: str, targets: list[tuple[str, str]]) -> list[Command]:
        """Commands that copy `src` (host/repo:tag) to every (host/repo, tag) target."""
        if tool in (ENGINE_TOOL, ENGINE_ECR_TOOL):
            tags = sorted({t for _, t in targets})
            assert len(tags) == 1
            argv = [str(ENGINE), "copy", src, *[r for r, _ in targets], "--tag", tags[0],
                    "--config", str(self.engine_config(tool)), "--output", "json"]
            return [Command(argv)]
        cmds = []
        for repo, tag in targets:
            if tool == "skopeo":
                cmds.append(Command([str(self.bin / "skopeo"), "copy", "--all", "--quiet", *self.skopeo_options(),
                                     f"docker://{src}", f"docker://{repo}:{tag}"]))
            elif tool == "crane":
                cmds.append(Command([str(self.bin / "crane"), "copy", src, f"{repo}:{tag}"],
                                    {"SSL_CERT_FILE": self.env["PROMOTER_TEST_CA"],
                                     "DOCKER_CONFIG": str(self.docker_dir)}))
            elif tool == "regctl":
                cmds.append(Command([str(self.bin / "regctl"), "image", "copy", src, f"{repo}:{tag}"],
                                    self.regctl_vars()))
            else:
                raise ValueError(tool)
        return cmds

    def batch(self, tool: str, images: list[tuple[str, list[tuple[str, str]]]], file: Path) -> list[Command]:
        """Commands that copy every (src, targets) of `images`, as `copy` does for one.

        The engine gets one `copy --batch` process reading `file` (written here, JSON, which
        its YAML reader takes as well); a peer has no batch mode for a list of images, so it
        runs one process per image, one after another.
        """
        if tool not in (ENGINE_TOOL, ENGINE_ECR_TOOL):
            return [cmd for src, targets in images for cmd in self.copy(tool, src, targets)]
        entries = []
        for src, targets in images:
            tags = sorted({t for _, t in targets})
            assert len(tags) == 1
            entries.append({"source": src, "targets": [r for r, _ in targets], "tags": tags})
        file.write_text(json.dumps({"images": entries}, indent=1) + "\n")
        return [Command([str(ENGINE), "copy", "--batch", str(file), "--config", str(self.engine_config(tool)),
                         "--output", "json"])]

    def sync(self, src_repo: str, dest_prefix: str) -> tuple[Command, str]:
        """`skopeo sync` of every tag of `src_repo` (host/repo), and the repository it lands in.

        Without `--scoped`, sync names the destination `dest_prefix/<last path component of
        src_repo>` (with it, the source's host:port would become part of the repository path).
        """
        cmd = Command([str(self.bin / "skopeo"), "sync", "--all", "--src", "docker", "--dest", "docker",
                       *self.skopeo_options(), src_repo, dest_prefix])
        return cmd, f"{dest_prefix}/{src_repo.rsplit('/', 1)[-1]}"


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    key: str
    title: str
    input: str
    kind: str  # copy | batch | fanout | limit
    tools: list[str]
    recopy: str | None = None  # the key under which the re-copy is recorded


def cases_for(inputs: dict[str, Input], quick: bool) -> list[Case]:
    size = "64 MiB" if quick else "1 GiB"
    half = "32 MiB" if quick else "512 MiB"
    n_small, small = len(inputs["small"].tags), inputs["small"].layer_size // MiB
    everyone = [ENGINE_TOOL, *PEERS]
    return [
        Case("limit", f"registry ingest limit, one {size} blob", "single", "limit", [LIMIT_PUT, LIMIT_PIPE]),
        Case("big8", f"{size} in 8 layers", "big8", "copy", [ENGINE_TOOL, ENGINE_ECR_TOOL, *PEERS],
             recopy="big8-recopy"),
        Case("multi", f"multi-arch index, 2 × {half}", "multi", "copy", everyone, recopy="multi-recopy"),
        Case("single", f"{size} in one layer", "single", "copy", [ENGINE_TOOL, ENGINE_ECR_TOOL, *PEERS]),
        Case("batch", f"{n_small} images of {small} MiB as one batch", "small", "batch", [*everyone, SKOPEO_SYNC]),
        Case("fanout-limit", f"registry ingest limit, three at once ({size} blob into each of three registries)",
             "single", "limit", [LIMIT_PUT3]),
        Case("fanout", f"{size} in 8 layers to three registries", "big8", "fanout", everyone),
    ]


# Everything after this line in the output file is written by people and kept across runs.
HAND_WRITTEN = "<!-- hand-written below: bench.py keeps it when it rewrites the file -->"

TITLES_EXTRA = {
    "big8-recopy": "re-copy of the 8-layer image (everything present)",
    "multi-recopy": "re-copy of the multi-arch index (everything present)",
}


class Bench:
    def __init__(self) -> None:
        self.quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        self.reps = int(os.environ.get("BENCH_REPS", "3"))
        self.keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
        self.env = load_env()
        self.run_id = time.strftime("%Y%m%d%H%M%S")
        self.inputs = inputs_for(self.quick)
        self.cases = cases_for(self.inputs, self.quick)
        if os.environ.get("BENCH_CASES"):
            wanted = set(os.environ["BENCH_CASES"].split(","))
            self.cases = [c for c in self.cases if c.key in wanted]
        if os.environ.get("BENCH_TOOLS"):
            wanted = set(os.environ["BENCH_TOOLS"].split(",")) | set(LIMITS)
            for c in self.cases:
                c.tools = [t for t in c.tools if t in wanted]
        self.results: dict[tuple[str, str], list[Run]] = {}
        self.others_cpu: float | None = None
        self.target_repos: list[tuple[Registry, str]] = []

    # -- setup

    def setup(self) -> None:
        if not Path(GNU_TIME).exists():
            fail(f"{GNU_TIME} is missing: install GNU time (Debian: apt-get install time)")
        if not ENGINE.exists():
            fail(f"{ENGINE} is missing: `cargo build --release --bin image-promoter` (make bench does it)")
        WORK.mkdir(parents=True, exist_ok=True)
        env = self.env
        self.own = OwnRegistries(env)
        extra = []
        storages = {}
        if any(c.kind == "fanout" or LIMIT_PUT3 in c.tools for c in self.cases):
            for name in ("fanout-b", "fanout-c"):
                host, storage = self.own.start(name)
                extra.append(host)
                storages[host] = storage
            log(f"started the fan-out registries {', '.join(extra)}")
        self.tools = Tools(env, extra)
        ca = env["PROMOTER_TEST_CA"]
        quay, ecr = env["PROMOTER_TEST_QUAY_REGISTRY"], env["PROMOTER_TEST_ECR_REGISTRY"]
        quay_cfg, quay_storage = registry_config(quay)
        self.source = Registry(quay, self.tools.auths[quay], ca, quay_storage)
        self.target = Registry(ecr, self.tools.auths[ecr], ca, registry_config(ecr)[1])
        self.source_pid = registry_pid(quay_cfg) if quay_cfg else None
        ecr_cfg = registry_config(ecr)[0]
        self.registry_pids = [self.source_pid, registry_pid(ecr_cfg) if ecr_cfg else None,
                              *[p.pid for p in self.own.procs]]
        if self.source_pid is None:
            log("WARNING: the source registry's process is not found: bytes sent by the source are not measured")
        self.fanout = [self.target] + [Registry(h, self.tools.auths[h], ca, storages[h]) for h in extra]
        if self.target.storage is None:
            log("WARNING: the ECR registry's storage directory is unknown: target repositories are not deleted")
        used = {c.input for c in self.cases}
        needed = {k: v for k, v in self.inputs.items() if k in used}
        build_inputs(needed)
        self.push_inputs(needed)

    def push_inputs(self, inputs: dict[str, Input]) -> None:
        for inp in inputs.values():
            log(f"pushing {inp.dirname} into {self.source.host}/bench-src/{inp.key} with skopeo")
            # A repository left over by an interrupted run (or one of the other mode) may hold
            # more tags, which `skopeo sync` would copy too.
            self.source.delete_repo(f"bench-src/{inp.key}")
            for tag in inp.tags:
                subprocess.run([str(self.tools.bin / "skopeo"), "copy", "--all", "--quiet",
                                "--authfile", str(self.tools.docker_dir / "config.json"),
                                "--dest-cert-dir", str(self.tools.certs),
                                f"oci:{WORK / 'layouts' / inp.dirname}:{tag}",
                                f"docker://{self.source.host}/bench-src/{inp.key}:{tag}"], check=True)
            listed = self.source.tags(f"bench-src/{inp.key}")
            if sorted(listed) != sorted(inp.tags):
                fail(f"{self.source.host}/bench-src/{inp.key} holds the tags {sorted(listed)}, "
                     f"not just the {len(inp.tags)} pushed")

    def cleanup(self) -> None:
        self.own.stop(self.keep)
        if self.keep:
            return
        for reg, repo in self.target_repos:
            reg.delete_repo(repo)
        self.target.delete_repo(f"bench-{self.run_id}")
        digests: set[str] = set()
        for key in {c.input for c in self.cases}:
            digests |= layout_digests(self.inputs[key])
            self.source.delete_repo(f"bench-src/{key}")
        self.source.delete_blobs(digests)
        self.target.delete_blobs(digests)
        for reg, top in ((self.source, "bench-src"), (self.target, f"bench-{self.run_id}")):
            if reg.storage is not None:
                try:
                    (reg.storage / "docker" / "registry" / "v2" / "repositories" / top).rmdir()
                except OSError:
                    pass

    # -- running

    def record(self, case: str, tool: str, run: Run) -> None:
        self.results.setdefault((case, tool), []).append(run)

    def verify(self, reg: Registry, repo: str, tag: str, src_repo: str) -> str:
        want = self.source.manifest_digest(src_repo, tag)
        got = reg.manifest_digest(repo, tag)
        if got != want:
            return f"{reg.host}/{repo}:{tag} is {got}, the source is {want}"
        return ""

    def run_case(self, case: Case, rep: int) -> None:
        n = len(case.tools)
        order = case.tools[rep % n:] + case.tools[: rep % n]
        inp = self.inputs[case.input]
        src_repo = f"bench-src/{inp.key}"
        for tool in order:
            slug = "-".join("".join(ch if ch.isalnum() else " " for ch in tool.lower()).split())
            repo = f"bench-{self.run_id}/{case.key}/{slug}-r{rep}"
            label = f"{case.key} / {tool} / rep {rep + 1}"
            if case.kind == "limit":
                run = self.run_limit(tool, inp, repo)
                self.record(case.key, tool, run)
                for reg in self.limit_registries(tool):
                    reg.delete_repo(repo)
                log(f"{label}: {run.wall:.2f} s")
                continue
            owned = None  # the repositories to delete afterwards, when not those checked
            if case.kind == "copy":
                cmds = self.tools.copy(tool, f"{self.source.host}/{src_repo}:v1",
                                       [(f"{self.target.host}/{repo}", "v1")])
                checks = [(self.target, repo, "v1")]
            elif case.kind == "batch" and tool == SKOPEO_SYNC:
                cmd, landed = self.tools.sync(f"{self.source.host}/{src_repo}", f"{self.target.host}/{repo}")
                cmds = [cmd]
                landed_repo = landed.split("/", 1)[1]
                checks = [(self.target, landed_repo, t) for t in inp.tags]
                owned = [(self.target, repo)]
            elif case.kind == "batch":
                images = [(f"{self.source.host}/{src_repo}:{tag}", [(f"{self.target.host}/{repo}", tag)])
                          for tag in inp.tags]
                cmds = self.tools.batch(tool, images, WORK / "config" / f"batch-{slug}-r{rep}.json")
                checks = [(self.target, repo, t) for t in inp.tags]
            else:  # fanout
                targets = [(reg, f"{repo}-{i}") for i, reg in enumerate(self.fanout)]
                cmds = self.tools.copy(tool, f"{self.source.host}/{src_repo}:v1",
                                       [(f"{reg.host}/{r}", "v1") for reg, r in targets])
                checks = [(reg, r, "v1") for reg, r in targets]
            is_engine = tool in (ENGINE_TOOL, ENGINE_ECR_TOOL)
            run = measure(cmds, label, self.source_pid, engine_json=is_engine)
            if run.ok:
                for reg, r, t in checks:
                    problem = self.verify(reg, r, t, src_repo)
                    if problem:
                        run.ok, run.error = False, f"wrong result: {problem}"
                        log(f"  FAILED {label}: {run.error}")
                        break
            self.record(case.key, tool, run)
            sent = f", source sent {run.source_sent / MiB:.0f} MiB" if run.source_sent is not None else ""
            log(f"{label}: {run.wall:.2f} s, peak RSS {run.maxrss_kib / 1024:.0f} MiB, CPU {run.cpu:.1f} s{sent}")
            if case.recopy and run.ok:
                again = measure(cmds, f"{case.recopy} / {tool} / rep {rep + 1}", self.source_pid,
                                engine_json=is_engine)
                self.record(case.recopy, tool, again)
                log(f"{case.recopy} / {tool} / rep {rep + 1}: {again.wall:.3f} s")
            owned = owned or sorted({(reg, r) for reg, r, _ in checks}, key=lambda x: (x[0].host, x[1]))
            for reg, r in owned:
                reg.delete_repo(r)
            self.target_repos += owned

    def limit_registries(self, tool: str) -> list[Registry]:
        """The registries a limit run PUTs into: the three of the fan-out, or the target."""
        return self.fanout if tool == LIMIT_PUT3 else [self.target]

    def run_limit(self, tool: str, inp: Input, repo: str) -> Run:
        path, digest, size = largest_blob(inp)
        ca = self.env["PROMOTER_TEST_CA"]

        def curl_put(reg: Registry) -> str:
            """One monolithic PUT of the blob's upload into `reg` (the body still to be given with -T)."""
            return (f"curl -sS --fail --http1.1 -o /dev/null -H 'Expect:' "
                    f"-H 'Content-Type: application/octet-stream' -H 'Content-Length: {size}' "
                    f"--cacert {ca} -K {self.curl_auth(reg)}")

        def put_url(reg: Registry) -> str:
            return f"{reg.start_upload(repo)}&digest={digest}"

        if tool == LIMIT_PUT:
            script = f"{curl_put(self.target)} -T {path} '{put_url(self.target)}'"
        elif tool == LIMIT_PUT3:
            # All three started at once; the run fails if any of them does.
            script = "\n".join([
                "pids=()",
                *[f"{curl_put(reg)} -T {path} '{put_url(reg)}' & pids+=($!)" for reg in self.fanout],
                "rc=0",
                'for p in "${pids[@]}"; do wait "$p" || rc=$?; done',
                "exit $rc",
            ])
        else:
            get_url = f"https://{self.source.host}/v2/bench-src/{inp.key}/blobs/{digest}"
            script = (f"curl -sS --fail --http1.1 --cacert {ca} -K {self.curl_auth(self.source)} '{get_url}' "
                      f"| {curl_put(self.target)} -T - '{put_url(self.target)}'")
        run = measure([Command(["bash", "-o", "pipefail", "-c", script])], f"limit / {tool}", self.source_pid)
        if run.ok:
            for reg in self.limit_registries(tool):
                resp = reg.request("HEAD", f"/v2/{repo}/blobs/{digest}")
                if resp.status != 200:
                    run.ok, run.error = False, f"blob not in {reg.host}/{repo} after the PUT (HTTP {resp.status})"
                    break
        return run

    def curl_auth(self, reg: Registry) -> str:
        """A curl config file holding the credentials (never on a command line)."""
        path = WORK / "config" / f"curl-{reg.host.replace(':', '-')}.conf"
        if not path.exists():
            user = base64.b64decode(reg.auth_b64).decode()
            path.write_text(f'user = "{user}"\n')
            path.chmod(0o600)
        return str(path)

    def run(self) -> None:
        started = dt.datetime.now(dt.timezone.utc)
        load_start = os.getloadavg()
        t0 = time.monotonic()
        try:
            self.setup()
            account = CpuAccount(self.registry_pids)
            for rep in range(self.reps):
                log(f"— repetition {rep + 1} of {self.reps}")
                for case in self.cases:
                    self.run_case(case, rep)
            self.others_cpu = account.others()
        finally:
            if hasattr(self, "own"):
                self.cleanup()
        elapsed = time.monotonic() - t0
        raw = WORK / f"results-{self.run_id}.json"
        raw.write_text(json.dumps({f"{c}|{t}": [r.__dict__ for r in runs] for (c, t), runs in self.results.items()},
                                  indent=1))
        md = Report(self, started, elapsed, load_start).markdown()
        out = Path(os.environ.get("BENCH_OUT") or (
            WORK / "benchmarks-quick.md" if self.quick else REPO / "docs" / "benchmarks.md"))
        if out.exists() and HAND_WRITTEN in out.read_text():
            # People's reading of the numbers is kept; it says which run it was written for.
            md += "\n" + HAND_WRITTEN + out.read_text().split(HAND_WRITTEN, 1)[1]
        out.write_text(md)
        print(md)
        log(f"wrote {out} (raw runs: {raw})")


# ---------------------------------------------------------------- report


def tool_version(argv: list[str], env: dict | None = None) -> str:
    """The first line a tool prints about its version ('?' when it cannot be run)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=20)
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0].strip() if text else "?"
    except OSError:
        return "?"


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}"


def fmt_bytes(n: float) -> str:
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{n / MiB:.0f} MiB"
    return f"{n / 1024:.0f} KiB"


class Report:
    def __init__(self, bench: Bench, started, elapsed, load_start):
        self.b, self.started, self.elapsed, self.load_start = bench, started, elapsed, load_start

    def med(self, case: str, tool: str) -> float | None:
        runs = [r for r in self.b.results.get((case, tool), []) if r.ok]
        return statistics.median(r.wall for r in runs) if runs else None

    def case_bytes(self, case: Case) -> int:
        inp = self.b.inputs[case.input]
        if case.kind == "limit":
            return largest_blob(inp)[2]
        return inp.bytes_per_tag * len(inp.tags)

    def engine_requests(self, run: Run) -> int | None:
        if not run.reports:
            return None
        return sum(r.get("sourceRequests", 0) + sum(t.get("requests", 0) for t in r.get("targets", []))
                   for r in run.reports)

    def engine_source_read(self, run: Run) -> int | None:
        if not run.reports:
            return None
        return sum(r.get("sourceBytesRead", 0) for r in run.reports)

    def rows(self) -> list[list[str]]:
        rows = []
        limit_rate = None
        lm = self.med("limit", LIMIT_PUT)
        limit_case = next((c for c in self.b.cases if c.key == "limit"), None)
        if lm and limit_case:
            limit_rate = self.case_bytes(limit_case) / lm
        keys = []
        for c in self.b.cases:
            keys.append((c.key, c.title, c))
            if c.recopy:
                keys.append((c.recopy, TITLES_EXTRA[c.recopy], c))
        for key, title, case in keys:
            size = self.case_bytes(case)
            peer_meds = [m for m in (self.med(key, p) for p in ALL_PEERS) if m]
            fastest = min(peer_meds) if peer_meds else None
            recopy = key.endswith("-recopy")
            for tool in case.tools:
                runs = self.b.results.get((key, tool), [])
                if not runs:
                    continue
                ok = [r for r in runs if r.ok]
                m = self.med(key, tool)
                if m is None:
                    rows.append([title, tool, f"FAILED ({len(runs)}/{len(runs)})", *[""] * 7])
                    continue
                copies = 3 if case.kind == "fanout" or tool == LIMIT_PUT3 else 1  # bytes delivered: to all three
                rate = "" if recopy else f"{copies * size / m / MiB:.0f}"
                ratio = f"{m / fastest:.2f}" if fastest and case.kind != "limit" else ""
                of_limit = ""
                if limit_rate and (case.kind in ("copy", "fanout") or tool == LIMIT_PUT3) and not recopy:
                    of_limit = f"{(copies * size / m) / limit_rate * 100:.0f} %"
                rss = max(r.maxrss_kib for r in ok) / 1024
                cpu = statistics.median(r.cpu for r in ok)
                sent = [r.source_sent for r in ok if r.source_sent is not None]
                reqs = [self.engine_requests(r) for r in ok if r.reports]
                failed = len(runs) - len(ok)
                name = tool + (f" ({failed} of {len(runs)} failed)" if failed else "")
                rows.append([title, name, fmt_s(m), rate, ratio, of_limit, f"{rss:.0f}", f"{cpu:.2f}",
                             fmt_bytes(statistics.median(sent)) if sent else "",
                             str(int(statistics.median(reqs))) if reqs else ""])
        return rows

    def table(self) -> str:
        head = ["case", "tool", "median s", "MiB/s", "× fastest peer", "of limit", "peak RSS MiB", "CPU s",
                "source sent", "engine requests"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        last = None
        for r in self.rows():
            cells = list(r)
            if cells[0] == last:
                cells[0] = ""
            else:
                last = cells[0]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def targets(self) -> list[str]:
        """The issue's targets, checked against this run's medians."""
        out = []
        b = self.b
        lm = self.med("limit", LIMIT_PUT)
        limit_case = next((c for c in b.cases if c.key == "limit"), None)
        for key in ("big8", "multi", "single"):
            case = next((c for c in b.cases if c.key == key), None)
            m = self.med(key, ENGINE_TOOL)
            if not case or m is None:
                continue
            peers = [x for x in (self.med(key, p) for p in ALL_PEERS) if x]
            parts = []
            if lm and limit_case:
                rate, limit = self.case_bytes(case) / m, self.case_bytes(limit_case) / lm
                parts.append(f"{rate / limit * 100:.0f} % of the single-PUT rate (target ≥ 95 %: "
                             f"{'met' if rate >= 0.95 * limit else 'not met'})")
            if peers:
                parts.append(f"{m / min(peers):.2f}× the fastest peer's time (target ≤ 0.90×: "
                             f"{'met' if m <= 0.9 * min(peers) else 'not met'})")
            out.append(f"- {case.title}: " + "; ".join(parts))
        rss = [r.maxrss_kib for (c, t), runs in b.results.items() if t in (ENGINE_TOOL, ENGINE_ECR_TOOL)
               for r in runs if r.ok]
        if rss:
            out.append(f"- Engine peak RSS, any case: {max(rss) / 1024:.0f} MiB (target ≤ 64 MiB: "
                       f"{'met' if max(rss) <= 64 * 1024 else 'not met'})")
        for key in ("big8-recopy", "multi-recopy"):
            runs = [r for r in b.results.get((key, ENGINE_TOOL), []) if r.ok and r.reports]
            if runs:
                reqs = max(self.engine_requests(r) for r in runs)
                tgt = max(sum(t.get("requests", 0) for t in r.reports[0]["targets"]) for r in runs)
                out.append(f"- {TITLES_EXTRA[key]}: {tgt} request(s) to the target, {reqs} in all "
                           f"(target ≤ 1 manifest request per tag: {'met' if tgt <= 1 else 'not met'})")
        m = self.med("batch", ENGINE_TOOL)
        peers = {p: x for p in ALL_PEERS if (x := self.med("batch", p))}
        if m and peers:
            best = min(peers, key=peers.__getitem__)
            n = len(b.inputs[next(c for c in b.cases if c.key == "batch").input].tags)
            out.append(f"- Batch: {m / peers[best]:.2f}× the fastest peer's time ({best}; target ≤ 0.50×: "
                       f"{'met' if m * 2 <= peers[best] else 'not met'}); the engine ran one `copy --batch` process "
                       f"for the {n} images with its default `--parallel`, the peers one process per image and "
                       f"`{SKOPEO_SYNC}` one for the whole repository")
        parts = []
        mf, ms = self.med("fanout", ENGINE_TOOL), self.med("big8", ENGINE_TOOL)
        runs = [r for r in b.results.get(("fanout", ENGINE_TOOL), []) if r.ok and r.reports]
        if mf and ms and runs:
            own = statistics.median(self.engine_source_read(r) for r in runs)
            sent = [r.source_sent for r in runs if r.source_sent is not None]
            src = statistics.median(sent) if sent else own
            size = self.case_bytes(next(c for c in b.cases if c.key == "fanout"))
            parts.append(f"{mf / ms:.2f}× the engine's single-target time (target ≤ 1.2×: "
                         f"{'met' if mf <= 1.2 * ms else 'not met'}); the source sent {fmt_bytes(src)} (the engine "
                         f"reports reading {fmt_bytes(own)}) for a {fmt_bytes(size)} image (target, once: "
                         f"{'met' if src <= size * 1.02 else 'not met'})")
        m3 = self.med("fanout-limit", LIMIT_PUT3)
        if m3 and lm:
            r3 = m3 / lm
            parts.append(f"the registries alone take {r3:.2f}× as long to ingest three copies at once as one "
                         f"(three curl PUTs at once against one: "
                         + ("above the 1.2× target before any source or client work)" if r3 > 1.2 else
                            "within the 1.2× target)"))
        if parts:
            out.append("- Three targets: " + "; ".join(parts))
        return out

    def machine(self) -> list[str]:
        cpu = "unknown"
        flags = ""
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
        mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal")), "0")

        version = tool_version
        bin_ = self.b.tools.bin
        rev = version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        dirty = version(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
        regctl = version([str(bin_ / "regctl"), "version", "--format", "{{.VCSTag}}"], self.b.tools.regctl_vars())
        others = self.b.others_cpu
        return [
            f"- CPU: {cpu}, {os.cpu_count()} logical CPUs, SHA-NI: {'yes' if ' sha_ni' in flags else 'no'}; "
            f"memory {int(mem) / 1024 / 1024:.0f} GiB; kernel {platform.release()}",
            f"- image-promoter {rev}{' (with uncommitted changes)' if dirty not in ('', '?') else ''}, release build; "
            f"{version([str(bin_ / 'skopeo'), '--version'])}; crane {version([str(bin_ / 'crane'), 'version'])}; "
            f"regctl {regctl}; registries: CNCF distribution "
            f"{version([str(bin_ / 'registry'), '--version']).split()[-1]} (filesystem storage, TLS, htpasswd)",
            f"- Run: {self.started:%Y-%m-%d %H:%M} UTC, {self.elapsed / 60:.0f} min in all, {self.b.reps} "
            f"repetition(s); 1-minute load average {self.load_start[0]:.1f} before it started"
            + (f"; while it measured, processes other than the benchmark's (tools, registries, harness) kept "
               f"{others:.2f} of the {os.cpu_count()} CPUs busy on average" if others is not None else ""),
        ]

    def markdown(self) -> str:
        b = self.b
        quick = " (BENCH_QUICK: small images, for trying the harness — not the numbers to quote)" if b.quick else ""
        cmd = "make bench" + (" BENCH_QUICK=1" if b.quick else "") + (
            f" BENCH_REPS={b.reps}" if b.reps != 3 else "")
        for var in ("BENCH_CASES", "BENCH_TOOLS"):
            if os.environ.get(var):
                cmd = f"{var}={os.environ[var]} " + cmd
        shared = (b.others_cpu or 0.0) > 0.15
        return "\n".join([
            "# Benchmarks: the copy engine against skopeo, crane and regctl" + quick,
            "",
            "Written by `bench/bench.py`, except the hand-written notes at the end (which it keeps): run it",
            "again rather than editing the numbers.",
            "",
            "```",
            cmd,
            "```",
            "",
            "Source: the test world's Quay registry; target: its ECR registry (both CNCF distribution on",
            "loopback over TLS with basic auth; the ECR one is declared `generic` to the engine, like the peers see",
            "it, except in the `image-promoter (ECR parts)` rows, which use `kind: ecr` and so 8 MiB `PATCH` parts).",
            "Every copy goes into a fresh repository; a re-copy copies into the same one again.",
            f"Median of {b.reps} interleaved repetitions (the tool order rotates per repetition). \"× fastest peer\"",
            "is the median time over the fastest of skopeo/crane/regctl (and `skopeo sync` in the batch; below",
            "1.00 is faster). \"of limit\" is the copy rate over the registry's own single-PUT ingest rate (first",
            "row). Peak RSS is the kernel's `ru_maxrss` of the tool's process from GNU time (the largest over the",
            "repetitions and, for the peers' batch and three-target runs, over the processes); CPU s is the tool's",
            "user + system time.",
            "\"source sent\" is what the source registry's process wrote meanwhile (its /proc/PID/io `wchar`: the",
            "responses, TLS included), measured the same way for every tool. \"engine requests\" is from the",
            "engine's own report (source + all targets).",
            "",
            "## Machine",
            "",
            *self.machine(),
            *(["- **The machine was shared**: other work (other engineers' builds and tests) competed for the CPUs",
               "  during the run, so absolute times are noisy and on the slow side; the interleaved repetitions",
               "  spread that noise over every tool alike."] if shared else []),
            "",
            "## Results",
            "",
            self.table(),
            "",
            "## Against the targets of issue 5",
            "",
            *self.targets(),
            "",
            "## Not yet measured fairly",
            "",
            "- **Batch**: the engine copies all the images in one `image-promoter copy --batch FILE` process (one",
            "  connection pool, its default `--parallel` of images in flight), from a file listing each tag. The",
            "  peers have no batch mode for a list of images, so skopeo, crane and regctl run one process per",
            "  image, one after another; the exception is `skopeo sync`, skopeo's own batch mode, which copies",
            "  every tag of the source repository (exactly the batch's images) in one process, image after image,",
            "  and counts as a peer of its own. Running the peers' processes concurrently could be faster in wall",
            "  time than shown.",
            "- **Three targets**: the engine copies to the three registries in one run; the peers run once per",
            "  target, one after another (MiB/s counts the bytes delivered to all three). Running the peers",
            "  concurrently would be faster in wall time but still read the source three times.",
            "- **Everything on one 2-CPU machine**: source registry, target registries and the tool share the",
            "  CPUs, and both registries hash and TLS-decrypt every byte, so the client's own CPU use shows up in",
            "  wall time. The limit row is the target registry alone receiving one PUT from curl (HTTP/1.1)",
            f"  from the page cache; the `{LIMIT_PIPE}` row is the cheapest possible streamed copy. The",
            "  three-at-once limit is that PUT into each of the three registries of the three-target case at the",
            "  same time (its MiB/s and \"of limit\" count the bytes of all three): the registries' own floor for",
            "  fan-out, with no source registry and no client copying.",
            "- **Peers' defaults**: each peer runs with its defaults (parallelism, HTTP/2 where it negotiates it).",
            "  skopeo keeps a persistent blob-info cache (/var/lib/containers/cache for root) and may try a",
            "  cross-repository mount from a repository the harness has since deleted; the registry refuses it",
            "  and skopeo uploads anyway, at the cost of an extra request per blob.",
            "- **Requests** are counted only for the engine (from its report); peers' request counts would need",
            "  a counting proxy, which would also slow them down.",
            "- **Disk**: the source and target registries de-duplicate blobs by digest across repositories, so the",
            "  registry keeps one stored copy per blob however many runs; the harness deletes its repositories and",
            "  blobs at the end (`BENCH_KEEP=1` keeps them). Layouts stay in target/bench/layouts for the next run.",
            "",
        ])


def main() -> None:
    if len(sys.argv) > 1:
        print(__doc__)
        sys.exit(2)
    Bench().run()


if __name__ == "__main__":
    main()
