"""`make demo`: the operator end to end on the local test world, as a person would
watch it.

`make demo` has started the test world (with its node) and pushed the operator's
image (`make image`) before this runs. The script then

1. installs the Helm chart into the namespace `image-promoter` with the world's
   values (tests/chart/testworld-values.yaml, filled by testworld_values.py);
2. seeds "internal ECR" with acme/postgres:17.2.1, scanned (one HIGH finding that
   the Gold example's policy ignores, with a reason and an expiry) and signed with
   cosign, and acme/legacy:3.1.0 whose scan has a CRITICAL finding; and "Quay"
   with a few tags of acme/operator for the mirror;
3. applies examples/ (their registry hosts rewritten to the world's) and one
   promotion of the legacy image into the namespace `demo`;
4. shows `kubectl get promotions,mirrors` each time it changes until everything
   settles, then the events, where the images landed (digests read back from the
   registries), each promotion receipt verified with `cosign verify-attestation`,
   and why the refused one was refused;
5. flips compliance live: ECR reports a new CRITICAL finding for the published
   postgres digest, and `kubectl get promotions` shows its COMPLIANT column turn
   False within the promotion's compliance interval (15 s in the demo), Ready
   staying True, nothing copied; then `image-promoter report`'s view of it;
6. with `--argocd` (`make demo ARGOCD=1`, a world with Argo CD): commits the same
   objects to a Git repository (target/demo/git), installs the health checks and
   actions into argocd-cm as docs/argocd.md says, lets an Application sync the folder
   and shows `argocd app get`: each object's sync state and health, as Argo CD sees it.

`make demo-down` (or `make env-down`) stops everything.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "testenv"))
from seed import Failure, Seeder, load_env  # noqa: E402

OPERATOR_NAMESPACE = "image-promoter"
NAMESPACE = "demo"
RELEASE = "image-promoter"
SETTLE_DEADLINE = 300.0
STATE = ROOT / "target" / "demo"
CRDS = ("imagepromotions.imagepromoter.dev", "registrymirrors.imagepromoter.dev")
RECEIPT_KEY = f"k8s://{NAMESPACE}/receipt-key"
VSA = "https://slsa.dev/verification_summary/v1"
COMPLIANCE_INTERVAL = "15s"
COMPLIANCE_DEADLINE = 120.0


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    def __init__(self, env: dict[str, str], image: str):
        self.seed = Seeder(env)
        self.env = env
        self.image = image
        self.alias = env["PROMOTER_TEST_PUBLIC_ALIAS"]
        self.manifests: list[dict] = []

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.seed.kubectl(*args, stdin=stdin)

    # --- 1. the chart ------------------------------------------------------------------

    def install(self) -> None:
        say(f"Installing the chart (release {RELEASE} in namespace {OPERATOR_NAMESPACE}, image {self.image})")
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": OPERATOR_NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
        self.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        self.adopt_crds()
        self.receipt_key()
        fill_env = dict(self.env, IMAGE=self.image)
        fill = ROOT / "tests" / "chart" / "testworld_values.py"
        objects = subprocess.run([sys.executable, str(fill), "objects"], env=fill_env, capture_output=True, text=True, check=True).stdout
        self.kubectl("apply", "-n", OPERATOR_NAMESPACE, "-f", "-", stdin=objects)
        STATE.mkdir(parents=True, exist_ok=True)
        values = STATE / "values.yaml"
        values.write_text(subprocess.run([sys.executable, str(fill), "values"], env=fill_env, capture_output=True, text=True, check=True).stdout)
        started = time.monotonic()
        self.seed.run(
            "helm", "upgrade", "--install", RELEASE, str(ROOT / "charts" / "image-promoter"),
            "--namespace", OPERATOR_NAMESPACE, "--values", str(values),
            "--set", f"ports.metrics={free_port()},ports.health={free_port()}",
            # Only the demo's namespace: the operator gets Roles there, no ClusterRole,
            # and leaves the tests' namespaces of the same world alone.
            "--set", f"watchNamespaces={{{NAMESPACE}}}",
            # The aggregated -view/-edit ClusterRoles are cluster-wide and named after the
            # release, which the deploy test also installs: leave them to it.
            "--set", "rbac.aggregateClusterRoles=false",
            # Tenancy is closed by default (only the release namespace): grant the demo's.
            "--set-json", f'config.tenancy=[{{"namespaces":["{NAMESPACE}"],"sources":["**"],"targets":["**"]}}]',
            # Promotion receipts, signed with the key cosign wrote into a Secret.
            "--set", f"attestation.key={RECEIPT_KEY}",
            "--wait", "--timeout", "3m",
        )
        print(f"helm: the Deployment is available ({time.monotonic() - started:.0f}s)")
        print(self.kubectl("get", "deployment,pods,lease", "-n", OPERATOR_NAMESPACE), end="")

    def adopt_crds(self) -> None:
        """CRDs another tool applied (the tests do) are adopted by the release."""
        for crd in CRDS:
            found = subprocess.run(["kubectl", "get", "crd", crd], env=self.seed.tool_env, capture_output=True)
            if found.returncode == 0:
                self.kubectl("annotate", "--overwrite", "crd", crd,
                             f"meta.helm.sh/release-name={RELEASE}", f"meta.helm.sh/release-namespace={OPERATOR_NAMESPACE}")
                self.kubectl("label", "--overwrite", "crd", crd, "app.kubernetes.io/managed-by=Helm")

    def receipt_key(self) -> None:
        """The operator's attestation key: `cosign generate-key-pair k8s://…` writes the
        Secret (in the watched namespace, where the operator may read Secrets)."""
        exists = subprocess.run(["kubectl", "get", "secret", "receipt-key", "-n", NAMESPACE],
                                env=self.seed.tool_env, capture_output=True)
        if exists.returncode != 0:
            STATE.mkdir(parents=True, exist_ok=True)
            self.seed.run("cosign", "generate-key-pair", RECEIPT_KEY, cwd=STATE,
                          extra_env={"COSIGN_PASSWORD": "demo-receipts"})
        print(f"receipts: signed with {RECEIPT_KEY} (cosign generate-key-pair wrote the Secret)")

    # --- 2. the images -----------------------------------------------------------------

    def images(self) -> None:
        say("Seeding internal ECR and Quay")
        keys = STATE / "cosign"
        public_key = self.seed.key_pair(keys)
        postgres, digest = self.postgres = self.seed.source(
            "acme/postgres", "17.2.1", "postgres 17.2.1 (demo)", "COMPLETE",
            [("CVE-2025-12345", "HIGH"), ("CVE-2026-0101", "LOW")],
        )
        self.seed.sign(f"{postgres.rsplit(':', 1)[0]}@{digest}", keys)
        print(f"internal ECR: {postgres} {digest}\n  scan COMPLETE: 1 HIGH (CVE-2025-12345, ignored by the Gold policy), 1 LOW; signed with cosign")
        legacy, digest = self.seed.source(
            "acme/legacy", "3.1.0", "legacy 3.1.0 (demo)", "COMPLETE", [("CVE-2026-31337", "CRITICAL")],
        )
        print(f"internal ECR: {legacy} {digest}\n  scan COMPLETE: 1 CRITICAL (CVE-2026-31337)")
        quay = self.seed.quay_host
        for tag in ("v0.9.0", "v1.0.0", "v1.4.2", "v1.5.0-rc.1", "latest", "3f2a9c1"):
            self.seed.push(f"{quay}/acme/operator:{tag}", f"operator {tag} (demo)")
        print(f"Quay: {quay}/acme/operator with v0.9.0 v1.0.0 v1.4.2 v1.5.0-rc.1 latest 3f2a9c1")

        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        self.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
        docker = Path(self.env["PROMOTER_TEST_DOCKER_CONFIG"]) / "config.json"
        for name in ("quay-robot", "quay-robot-readonly"):
            secret = self.kubectl("create", "secret", "docker-registry", name, "-n", NAMESPACE,
                                  f"--from-file=.dockerconfigjson={docker}", "--dry-run=client", "-o", "json")
            self.kubectl("apply", "-f", "-", stdin=secret)
        secret = self.kubectl("create", "secret", "generic", "cosign-public-key", "-n", NAMESPACE,
                              f"--from-file=cosign.pub={public_key}", "--dry-run=client", "-o", "json")
        self.kubectl("apply", "-f", "-", stdin=secret)

    # --- 3. the objects ----------------------------------------------------------------

    def localized(self, text: str) -> dict:
        """An example with the world's registries in place of the real ones. The
        world's ECR Public is not at public.ecr.aws, so its targets say so with
        `credentials.ecrPublic` (as a private ECR Public endpoint would)."""
        account = self.env["PROMOTER_TEST_ECR_ACCOUNT"]
        obj = yaml.safe_load(text.replace(f"{account}.dkr.ecr.us-east-1.amazonaws.com", self.seed.ecr_host))
        for target in obj["spec"]["targets"]:
            repository = target["repository"]
            if repository.startswith("public.ecr.aws/"):
                alias_and_name = repository.removeprefix("public.ecr.aws/").split("/", 1)[1]
                target["repository"] = f"{self.seed.public_host}/{self.alias}/{alias_and_name}"
                target["credentials"] = {"ecrPublic": {}}
            elif repository.startswith("quay.io/"):
                target["repository"] = repository.replace("quay.io/", f"{self.seed.quay_host}/", 1)
        source = obj["spec"]["source"]
        if "repository" in source:
            source["repository"] = source["repository"].replace("quay.io/", f"{self.seed.quay_host}/", 1)
        return obj

    def apply(self) -> list[str]:
        say(f"Applying the examples into namespace {NAMESPACE}")
        applied = []
        for example in ("imagepromotion-gold.yaml", "registrymirror-quay-backfill.yaml"):
            obj = self.localized((ROOT / "examples" / example).read_text())
            if obj["kind"] == "ImagePromotion":
                # Judged again every few seconds, so the demo can show a flip.
                obj["spec"]["compliance"] = {"interval": COMPLIANCE_INTERVAL}
            print(self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(obj)), end="")
            applied.append(example)
            self.manifests.append(obj)
        refused = {
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "ImagePromotion",
            "metadata": {"name": "legacy-3.1.0"},
            "spec": {
                "source": {"image": f"{self.seed.ecr_host}/acme/legacy:3.1.0"},
                "targets": [{"name": "quay", "repository": f"{self.seed.quay_host}/acme/legacy",
                             "tags": ["3.1.0"], "credentials": {"secretRef": {"name": "quay-robot"}}}],
            },
        }
        print(self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(refused)), end="")
        self.manifests.append(refused)
        return applied

    # --- 4. watching -------------------------------------------------------------------

    def objects(self) -> list[dict]:
        listed = json.loads(self.kubectl("get", "imagepromotions,registrymirrors", "-n", NAMESPACE, "-o", "json"))
        return listed["items"]

    @staticmethod
    def settled(obj: dict) -> bool:
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return False
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        return conditions.get("Ready") == "True" or conditions.get("Stalled") == "True"

    def watch(self) -> None:
        say("kubectl get promotions,mirrors -n demo (until everything settles)")
        started = time.monotonic()
        shown = None
        while True:
            table = self.kubectl("get", "promotions,mirrors", "-n", NAMESPACE)
            # Shown again when something but the AGE column changed.
            state = [line.rsplit(None, 1)[0] for line in table.splitlines() if line.strip()]
            if state != shown:
                print(f"[{time.monotonic() - started:5.1f}s]\n{table}", flush=True)
                shown = state
            objects = self.objects()
            if objects and all(self.settled(o) for o in objects):
                return
            if time.monotonic() - started > SETTLE_DEADLINE:
                raise Failure(f"not settled within {SETTLE_DEADLINE:.0f}s; the operator's log: "
                              f"kubectl logs -n {OPERATOR_NAMESPACE} deployment/{RELEASE}")
            time.sleep(1)

    def digest(self, reference: str) -> str:
        """The digest `reference` names, read from its registry with skopeo (crane
        refuses the world's ECR Public token realm on 127.0.0.1)."""
        authfile = str(Path(self.env["PROMOTER_TEST_DOCKER_CONFIG"]) / "config.json")
        return self.seed.run("skopeo", "inspect", "--authfile", authfile, "--format", "{{.Digest}}",
                             f"docker://{reference}").strip()

    def report(self) -> None:
        say("Events")
        print(self.kubectl("get", "events.events.k8s.io", "-n", NAMESPACE, "--sort-by=.metadata.creationTimestamp",
                           "-o", "custom-columns=OBJECT:.regarding.name,TYPE:.type,REASON:.reason,NOTE:.note"), end="")
        say("Where the images landed (digests read back from the registries)")
        for obj in self.objects():
            status = obj.get("status") or {}
            if obj["kind"] == "ImagePromotion":
                for target in status.get("targets", []):
                    repository = next(t["repository"] for t in obj["spec"]["targets"] if t["name"] == target["name"])
                    for tag in target.get("tags") or []:
                        digest = self.digest(f"{repository}:{tag}")
                        mark = "=" if digest == target.get("digest") else "≠"
                        print(f"{obj['metadata']['name']}: {repository}:{tag} {digest} {mark} status")
            else:
                tags = status.get("tags") or {}
                print(f"{obj['metadata']['name']} (mirror, tier {obj['spec'].get('tier')}): {json.dumps(tags)}")
                source = obj["spec"]["source"]["repository"]
                for tag in ("v1.0.0", "v1.4.2"):
                    for target in obj["spec"]["targets"]:
                        digest = self.digest(f"{target['repository']}:{tag}")
                        mark = "=" if digest == self.digest(f"{source}:{tag}") else "≠"
                        print(f"{obj['metadata']['name']}: {target['repository']}:{tag} {digest} {mark} source")
        self.receipts()
        say("Why the refused ones were refused")
        for obj in self.objects():
            for condition in (obj.get("status") or {}).get("conditions", []):
                if condition["type"] == "Stalled" and condition["status"] == "True":
                    print(f"{obj['kind']}/{obj['metadata']['name']}: {condition['reason']}: {condition['message']}")

    # --- 6. Argo CD (--argocd) -----------------------------------------------------------

    def argocd(self) -> None:
        if "PROMOTER_TEST_ARGOCD_SERVER" not in self.env:
            raise Failure("the world has no Argo CD: run `make demo ARGOCD=1` (it starts one)")
        say("Argo CD: the same objects from Git, health checks and actions from argocd-cm")
        git = STATE / "git"
        subprocess.run(["rm", "-rf", str(git)], check=True)
        (git / "work" / "releases").mkdir(parents=True)
        for obj in self.manifests:
            (git / "work" / "releases" / f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml").write_text(yaml.safe_dump(obj))
        author = ["-c", "user.name=demo", "-c", "user.email=demo@example.com"]
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(git / "releases.git")], check=True)
        for args in (["init", "--quiet", "--initial-branch=main"], ["add", "--all"], ["commit", "--quiet", "-m", "The demo's objects"],
                     ["push", "--quiet", str(git / "releases.git"), "main"]):
            subprocess.run(["git", *author, *args], cwd=git / "work", check=True)
        subprocess.run("python3 integrations/argocd/argocd-cm.py"
                       " | kubectl -n argocd patch configmap argocd-cm --type merge --patch-file /dev/stdin",
                       shell=True, cwd=ROOT, check=True)
        namespace = self.env["PROMOTER_TEST_ARGOCD_NAMESPACE"]
        application = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "demo", "namespace": namespace},
            "spec": {
                "project": "default",
                "source": {"repoURL": f"file://{git / 'releases.git'}", "targetRevision": "HEAD", "path": "releases"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": NAMESPACE},
                "syncPolicy": {"automated": {"selfHeal": True, "prune": True}, "syncOptions": ["ServerSideApply=true"]},
            },
        }
        print(self.kubectl("apply", "-f", "-", stdin=json.dumps(application)), end="")
        argocd = [self.env["PROMOTER_TEST_ARGOCD_CLI"], "--server", self.env["PROMOTER_TEST_ARGOCD_SERVER"], "--plaintext"]
        started = time.monotonic()
        while True:
            app = json.loads(self.kubectl("get", "applications.argoproj.io", "demo", "-n", namespace, "-o", "json"))
            status = app.get("status") or {}
            if status.get("sync", {}).get("status") == "Synced" and status.get("health", {}).get("status") in ("Healthy", "Degraded", "Suspended"):
                break
            if time.monotonic() - started > SETTLE_DEADLINE:
                raise Failure(f"the Application did not sync within {SETTLE_DEADLINE:.0f}s: {json.dumps(status)}")
            time.sleep(1)
        say("argocd app get demo")
        print(subprocess.run([argocd[0], "app", "get", f"{namespace}/demo", *argocd[1:]],
                             capture_output=True, text=True, check=True).stdout, end="")


    def receipts(self) -> None:
        say("Receipts, checked as a consumer would: cosign verify-attestation")
        public_key = STATE / "receipt.pub"
        # What `cosign public-key --key k8s://…` prints: the Secret's cosign.pub.
        encoded = self.kubectl("get", "secret", "receipt-key", "-n", NAMESPACE, "-o", "jsonpath={.data.cosign\\.pub}")
        public_key.write_bytes(base64.b64decode(encoded))
        print(f"{public_key.name}: cosign.pub of {RECEIPT_KEY}")
        # cosign reads the receipt's Sigstore bundle referrer and wants a trusted
        # root for that format; offline, an empty one (a key uses nothing in it).
        empty_root = STATE / "empty_trusted_root.json"
        empty_root.write_text('{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}')
        for obj in self.objects():
            if obj["kind"] != "ImagePromotion":
                continue
            for target in (obj.get("status") or {}).get("targets", []):
                if not target.get("receipt"):
                    continue
                repository = next(t["repository"] for t in obj["spec"]["targets"] if t["name"] == target["name"])
                reference = f"{repository}@{target['digest']}"
                print(f"$ cosign verify-attestation --trusted-root {empty_root.name} --key {public_key.name} "
                      f"--type {VSA} --insecure-ignore-tlog=true {reference}")
                out = self.seed.run(
                    "cosign", "verify-attestation", "--trusted-root", str(empty_root),
                    "--key", str(public_key), "--type", VSA, "--insecure-ignore-tlog=true", reference,
                    extra_env={"SIGSTORE_NO_CACHE": "true", "TUF_ROOT": str(STATE / "tuf")},
                )
                for line in out.splitlines():
                    statement = json.loads(base64.b64decode(json.loads(line)["payload"]))
                    predicate = statement["predicate"]
                    print(f"  verified: {predicate['verificationResult']} {predicate['policy']['uri']} "
                          f"generation {predicate['policy']['generation']}, receipt {target['receipt'][:19]}…, "
                          f"signatures verified: {len(predicate['inputAttestations'])}")

    # --- 5. compliance -------------------------------------------------------------------

    def rescan(self, name: str, digest: str, findings: list[tuple[str, str]]) -> None:
        """A new scan result for an image moto was already asked about: moto keeps
        the first result it handed out, so the image is registered anew (same
        manifest, tag and digest), then scanned with `findings`."""
        image_id = {"imageDigest": digest}
        image = self.seed.ecr.batch_get_image(repositoryName=name, imageIds=[image_id])["images"][0]
        tag = image["imageId"].get("imageTag")
        self.seed.ecr.batch_delete_image(repositoryName=name, imageIds=[image_id])
        extra = {"imageTag": tag} if tag else {}
        self.seed.ecr.put_image(
            repositoryName=name,
            imageManifest=image["imageManifest"],
            imageManifestMediaType=image.get("imageManifestMediaType", "application/vnd.oci.image.manifest.v1+json"),
            imageDigest=digest,
            **extra,
        )
        self.seed.scan(name, digest, "COMPLETE", findings)

    def compliance_flip(self) -> None:
        reference, digest = self.postgres
        name = reference.split("/", 1)[1].rsplit(":", 1)[0]
        say(f"Compliance: ECR now reports a CRITICAL finding (CVE-2026-9999) for {name}@{digest}")
        self.rescan(name, digest, [("CVE-2025-12345", "HIGH"), ("CVE-2026-0101", "LOW"),
                                   ("CVE-2026-9999", "CRITICAL")])
        started = time.monotonic()
        shown = None
        while True:
            table = self.kubectl("get", "promotions", "-n", NAMESPACE)
            state = [line.rsplit(None, 1)[0] for line in table.splitlines() if line.strip()]
            if state != shown:
                print(f"[{time.monotonic() - started:5.1f}s]\n{table}", flush=True)
                shown = state
            flipped = [
                c for o in self.objects() if o["kind"] == "ImagePromotion"
                for c in (o.get("status") or {}).get("conditions", [])
                if c["type"] == "Compliant" and c["status"] == "False"
            ]
            if flipped:
                print(f"Compliant=False {flipped[0]['reason']}: {flipped[0]['message']}")
                break
            if time.monotonic() - started > COMPLIANCE_DEADLINE:
                raise Failure(f"no Compliant=False within {COMPLIANCE_DEADLINE:.0f}s")
            time.sleep(1)
        print(self.kubectl("get", "events.events.k8s.io", "-n", NAMESPACE, "--field-selector",
                           "reason=VulnerabilitiesFound", "-o",
                           "custom-columns=OBJECT:.regarding.name,TYPE:.type,REASON:.reason,ACTION:.action"), end="")
        say("image-promoter report -n demo --in-sync-for 0s (the migration view)")
        # The CLI is the release binary `make demo` built for the image (where cargo put it).
        binary = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release" / "image-promoter"
        if not binary.exists():
            raise Failure(f"{binary} is missing: `make demo` builds it (make release-binary)")
        print(self.seed.run(str(binary), "report", "-n", NAMESPACE, "--in-sync-for", "0s"), end="")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="the operator's image, host/repository:tag (make image pushed it)")
    parser.add_argument("--argocd", action="store_true", help="also sync the objects from Git with the world's Argo CD and show `argocd app get`")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        demo = Demo(load_env(), args.image)
        demo.install()
        demo.images()
        demo.apply()
        demo.watch()
        demo.report()
        demo.compliance_flip()
        if args.argocd:
            demo.argocd()
    except (Failure, subprocess.CalledProcessError) as failure:
        print(f"demo: {failure}", file=sys.stderr)
        return 1
    say(f"Done in {time.monotonic() - started:.0f}s. `make demo-down` (or `make env-down`) stops the world.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
