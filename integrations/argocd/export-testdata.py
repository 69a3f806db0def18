"""Exports the Argo CD health checks' testdata from real objects of the test world.

The fixtures under `resource_customizations/imagepromoter.dev/<Kind>/testdata/`
are what the operator really writes, not what someone believes it writes. This
script makes them again: it seeds the local test world (`make env-up`;
`PROMOTER_TESTENV_NODE=0` is enough) with source images in "internal ECR"
(registered in moto with their real digests, with injected scan results),
runs `image-promoter run` against it as the world's admin, applies one object
per health state, waits (polling with a deadline) until the operator has put
each into that state, and writes the objects with `kubectl get`, stripped of
server bookkeeping (uid, resourceVersion, managedFields, timestamps of
metadata). The world's 127.0.0.1 hosts are rewritten to the names people know
(`<account>.dkr.ecr.us-east-1.amazonaws.com`, `quay.io`, `public.ecr.aws`) so
the fixtures read like real ones and do not change with the world's ports.

    make env-up
    target/testenv/bin/python integrations/argocd/export-testdata.py            # ImagePromotion
    target/testenv/bin/python integrations/argocd/export-testdata.py --kind RegistryMirror

Each state is waited for with a deadline; a state the operator does not reach
fails the script, naming the state.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "testenv"))
from seed import Failure, Seeder, load_env  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = Path(__file__).resolve().parent / "resource_customizations" / "imagepromoter.dev"
NAMESPACE = "health-fixtures"
DEADLINE = 120.0
TAG = "1.0.0"


class World(Seeder):
    """The test world as this script uses it: kubectl, moto, the registries."""

    def __init__(self, env: dict[str, str], binary: Path):
        super().__init__(env)
        self.binary = binary
        self.layer_path = "etc/health-fixture"
        # Targets are new repositories on every run, so each export shows a first
        # promotion (bytes copied, repository created); cleaned() removes the suffix.
        self.run_suffix = f"-run{int(time.time()):x}"

    def install_crds(self) -> None:
        crds = self.run(str(self.binary), "crds")
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=crds)
        for crd in ("imagepromotions.imagepromoter.dev", "registrymirrors.imagepromoter.dev"):
            self.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd}")

    def fresh_namespace(self) -> None:
        """The fixtures' namespace, empty. (Objects are deleted one by one: a
        world without the node has no namespace controller to empty a deleted
        namespace.)"""
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        self.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(namespace))
        self.kubectl("delete", "-n", NAMESPACE, "imagepromotions,registrymirrors", "--all", "--wait=true", "--timeout=60s")

    def source(self, name: str, content: str, scan: str, findings: list[tuple[str, str]]) -> str:
        """A fresh source repository `name` with one image tagged TAG; its reference."""
        return super().source(name, TAG, content, scan, findings)[0]

    # --- objects ---------------------------------------------------------------

    def apply(self, obj: dict) -> None:
        obj.setdefault("metadata", {})["namespace"] = NAMESPACE
        self.kubectl("apply", "--server-side", "--field-manager=health-fixtures", "-f", "-", stdin=json.dumps(obj))

    def get(self, kind: str, name: str) -> dict:
        return json.loads(self.kubectl("get", "-n", NAMESPACE, kind, name, "-o", "json"))

    def wait_for(self, kind: str, name: str, state: str, check) -> dict:
        deadline = time.monotonic() + DEADLINE
        while True:
            obj = self.get(kind, name)
            if check(obj):
                return obj
            if time.monotonic() > deadline:
                if not obj.get("status"):
                    raise Failure(f"{kind}/{name} did not reach {state} within {DEADLINE:.0f}s: the operator wrote "
                                  f"no status at all; does this image-promoter reconcile {kind}? (its log: target/health-fixtures/)")
                status = json.dumps(obj["status"], indent=2)
                raise Failure(f"{kind}/{name} did not reach {state} within {DEADLINE:.0f}s; its status:\n{status}")
            time.sleep(0.5)

    def cleaned(self, obj: dict) -> str:
        """The object as a fixture: server bookkeeping removed, hosts renamed."""
        meta = obj["metadata"]
        for key in ("uid", "resourceVersion", "managedFields", "creationTimestamp", "selfLink"):
            meta.pop(key, None)
        annotations = meta.get("annotations", {})
        annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
        if not annotations:
            meta.pop("annotations", None)
        text = yaml.safe_dump(obj, sort_keys=False, width=1000)
        account = self.env["PROMOTER_TEST_ECR_ACCOUNT"]
        for host, name in (
            (self.ecr_host, f"{account}.dkr.ecr.us-east-1.amazonaws.com"),
            (self.quay_host, "quay.io"),
            (self.public_host, "public.ecr.aws"),
        ):
            text = text.replace(host, name)
        return text.replace(self.run_suffix, "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Operator:
    """`image-promoter run` as the world's admin, watching the fixtures' namespace."""

    def __init__(self, world: World, log: Path):
        self.world = world
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        health = free_port()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.world.binary), "run",
                    "--config", self.world.env["PROMOTER_TEST_CONFIG"],
                    "--watch-namespace", NAMESPACE,
                    "--metrics-bind-address", f"127.0.0.1:{free_port()}",
                    "--health-probe-bind-address", f"127.0.0.1:{health}",
                ],
                env=dict(self.world.tool_env, IMAGE_PROMOTER_LOG="info"),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + DEADLINE
        while True:
            if self.process.poll() is not None:
                raise Failure(f"image-promoter run exited with {self.process.returncode}; its log: {self.log}")
            try:
                if requests.get(f"http://127.0.0.1:{health}/readyz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise Failure(f"image-promoter run was not ready within {DEADLINE:.0f}s; its log: {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def condition(obj: dict, type_: str) -> dict:
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == type_:
            return c
    return {}


def is_true(obj: dict, type_: str, reason: str | None = None) -> bool:
    c = condition(obj, type_)
    return c.get("status") == "True" and (reason is None or c.get("reason") == reason)


def observed(obj: dict) -> bool:
    return obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]


# --- the states -------------------------------------------------------------


def promotion(name: str, image: str, world: World, verify: dict | None = None) -> dict:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": name},
        "spec": {
            "source": {"image": image},
            "verify": verify if verify is not None else {
                "requireTagImmutability": True,
                "encryption": "KMS",
                "scan": {"required": True, "failOnSeverity": "HIGH"},
            },
            "targets": [
                {"name": "ecr-public", "repository": f"{world.public_host}/{world.env['PROMOTER_TEST_PUBLIC_ALIAS']}/{name}{world.run_suffix}",
                 "credentials": {"ecrPublic": {}},
                 "createRepository": {"description": "Promoted from internal ECR", "operatingSystems": ["Linux"]}},
                {"name": "quay", "repository": f"{world.quay_host}/health-fixtures/{name}{world.run_suffix}",
                 "tags": [TAG, "latest"], "floatingTags": ["latest"]},
            ],
        },
    }


def export_promotions(world: World, operator: Operator) -> dict[str, str]:
    kind = "imagepromotions"
    good = world.source("health-fixtures/app", "app 1.0.0", "COMPLETE", [("CVE-2026-0001", "LOW")])
    vulnerable = world.source("health-fixtures/vulnerable", "vulnerable 1.0.0", "COMPLETE",
                              [("CVE-2026-0002", "CRITICAL"), ("CVE-2026-0003", "MEDIUM")])
    scanning = world.source("health-fixtures/scanning", "scanning 1.0.0", "IN_PROGRESS", [])
    missing = f"{world.ecr_host}/health-fixtures/app:9.9.9"

    # Quay already has another image under the write-once tag the "conflict" promotion publishes.
    world.push(f"{world.quay_host}/health-fixtures/conflict{world.run_suffix}:{TAG}", "published by hand")

    operator.start()
    fixtures: dict[str, dict] = {}
    world.apply(promotion("app", good, world))
    world.apply(promotion("conflict", good, world))
    world.apply(promotion("vulnerable", vulnerable, world))
    world.apply(promotion("scanning", scanning, world))
    world.apply(promotion("missing-source", missing, world))
    world.apply(promotion("changed", good, world))
    fixtures["promoted"] = world.wait_for(kind, "app", "Ready=True", lambda o: observed(o) and is_true(o, "Ready"))
    fixtures["vulnerabilities-found"] = world.wait_for(
        kind, "vulnerable", "Stalled=True (VulnerabilitiesFound)",
        lambda o: observed(o) and is_true(o, "Stalled", "VulnerabilitiesFound"))
    fixtures["scan-pending"] = world.wait_for(
        kind, "scanning", "Reconciling=True (ScanPending)",
        lambda o: observed(o) and is_true(o, "Reconciling") and condition(o, "Verified").get("reason") == "ScanPending")
    fixtures["source-not-found"] = world.wait_for(
        kind, "missing-source", "Stalled=True (SourceNotFound)",
        lambda o: observed(o) and is_true(o, "Stalled", "SourceNotFound"))
    fixtures["tag-conflict"] = world.wait_for(
        kind, "conflict", "Stalled=True (TagConflict)",
        lambda o: observed(o) and is_true(o, "Stalled", "TagConflict"))
    world.wait_for(kind, "changed", "Ready=True", lambda o: observed(o) and is_true(o, "Ready"))
    operator.stop()

    # With the operator stopped: a spec change it has not seen, and an object it never saw.
    world.kubectl("patch", "-n", NAMESPACE, kind, "changed", "--type=json",
                  "-p", json.dumps([{"op": "add", "path": "/spec/copy", "value": {"referrers": False}}]))
    fixtures["generation-ahead"] = world.wait_for(kind, "changed", "generation 2", lambda o: o["metadata"]["generation"] == 2)
    world.apply(promotion("new", good, world))
    fixtures["no-status"] = world.get(kind, "new")
    return {name: world.cleaned(obj) for name, obj in fixtures.items()}


def mirror(name: str, world: World, source: str, suspend: bool = False) -> dict:
    return {
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": name},
        "spec": {
            "tier": "Silver",
            "source": {"repository": source},
            "targets": [{"name": "quay", "repository": f"{world.quay_host}/health-fixtures/mirror-{name}{world.run_suffix}"}],
            "tags": {"include": ["^1[.]"]},
            "interval": "10m",
            "suspend": suspend,
        },
    }


def export_mirrors(world: World, operator: Operator) -> dict[str, str]:
    kind = "registrymirrors"
    good = world.source("health-fixtures/mirrored", "mirrored 1.0.0", "COMPLETE", [])
    repository = good.rsplit(":", 1)[0]
    missing = f"{world.ecr_host}/health-fixtures/no-such-repository"

    operator.start()
    fixtures: dict[str, dict] = {}
    world.apply(mirror("in-sync", world, repository))
    world.apply(mirror("source-not-found", world, missing))
    world.apply(mirror("suspended", world, repository, suspend=True))
    world.apply(mirror("changed", world, repository))
    fixtures["in-sync"] = world.wait_for(kind, "in-sync", "Ready=True", lambda o: observed(o) and is_true(o, "Ready"))
    fixtures["source-not-found"] = world.wait_for(
        kind, "source-not-found", "Stalled=True", lambda o: observed(o) and is_true(o, "Stalled"))
    # A suspended mirror acknowledges its generation and syncs nothing.
    fixtures["suspended"] = world.wait_for(kind, "suspended", "generation observed", observed)
    world.wait_for(kind, "changed", "Ready=True", lambda o: observed(o) and is_true(o, "Ready"))
    world.kubectl("patch", "-n", NAMESPACE, kind, "in-sync", "--type=merge", "-p", json.dumps({"spec": {"suspend": True}}))
    fixtures["suspended-in-sync"] = world.wait_for(
        kind, "in-sync", "suspended, generation 2 observed",
        lambda o: o["metadata"]["generation"] == 2 and observed(o))
    operator.stop()

    world.kubectl("patch", "-n", NAMESPACE, kind, "changed", "--type=merge", "-p", json.dumps({"spec": {"interval": "15m"}}))
    fixtures["generation-ahead"] = world.wait_for(kind, "changed", "generation 2", lambda o: o["metadata"]["generation"] == 2)
    world.apply(mirror("new", world, repository))
    fixtures["no-status"] = world.get(kind, "new")
    return {name: world.cleaned(obj) for name, obj in fixtures.items()}


EXPORTERS = {"ImagePromotion": export_promotions, "RegistryMirror": export_mirrors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=sorted(EXPORTERS), action="append",
                        help="which kind's fixtures to export (repeatable; default ImagePromotion)")
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "debug" / "image-promoter",
                        help="the image-promoter binary (default: target/debug/image-promoter; cargo build first)")
    args = parser.parse_args()
    try:
        if not args.binary.exists():
            raise Failure(f"{args.binary} does not exist: run `cargo build` or pass --binary")
        world = World(load_env(), args.binary.resolve())
        world.install_crds()
        for kind in args.kind or ["ImagePromotion"]:
            world.fresh_namespace()
            operator = Operator(world, ROOT / "target" / "health-fixtures" / f"{kind}.log")
            try:
                fixtures = EXPORTERS[kind](world, operator)
            finally:
                operator.stop()
            folder = CUSTOMIZATIONS / kind / "testdata"
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in sorted(fixtures.items()):
                (folder / f"{name}.yaml").write_text(text)
                print(f"wrote {(folder / f'{name}.yaml').relative_to(ROOT)}")
    except Failure as failure:
        print(f"export-testdata: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
