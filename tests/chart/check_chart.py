#!/usr/bin/env python3
"""`make chart-check`: the Helm chart's tests, offline.

1. The chart's copies of crds/imagepromoter.dev.yaml and deploy/rbac.yaml are identical
   to them (the CRD and RBAC templates read the copies).
2. The README's values table and values.schema.json agree with values.yaml
   (values_doc.py).
3. For every value set (tests/chart/values/*.yaml and testworld-values.yaml, filled
   with sample values): `helm lint --strict`, `helm template`, kubeconform -strict
   against the schemas of the pinned Kubernetes release (made by `make tools`) and of
   our CRDs, and what the rendering must contain (table below).
4. Refusals: each tests/chart/refused/*.yaml is refused by the schema or the chart
   with the message its first line names; a rendering with an unknown field or a
   wrong type, and a custom resource with an unknown field, are refused by kubeconform.
5. With --server: every rendering is applied with `kubectl apply --dry-run=server` to
   the test world's kube-apiserver (KUBECONFIG from target/testenv/env), in a fresh
   namespace that enforces the `restricted` Pod Security level, and the operator's pod
   (the Deployment's template as a Pod) is admitted there. ServiceMonitor and
   PrometheusRule are left to kubeconform: the world has no Prometheus Operator CRDs.
6. Alerts: the PrometheusRule's rule group, taken from the rendering, passes
   `promtool check rules`, and `promtool test rules` runs alerts_test.yaml against it;
   every alert the chart renders must fire in at least one of its tests.

Run from the repository root with the tools of target/testenv/bin.
"""

import copy
import json
import os
import uuid
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kube_schemas  # noqa: E402
import testworld_values  # noqa: E402
import values_doc  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "image-promoter"
HERE = ROOT / "tests" / "chart"
BIN = ROOT / "target" / "testenv" / "bin"
KUBE_SCHEMAS = ROOT / "target" / "testenv" / "kube-schemas"
NAMESPACE = "image-promoter"
RELEASE = "promoter"
LAYOUT = "{{ .ResourceKind }}{{ .KindSuffix }}.json"
# What testworld_values.py reads from target/testenv/env, with sample values.
SAMPLE_WORLD = {
    "IMAGE": "127.0.0.1:41001/image-promoter:dev",
    "PROMOTER_TEST_ECR_REGISTRY": "127.0.0.1:41001",
    "PROMOTER_TEST_ECR_ACCOUNT": "123456789012",
    "PROMOTER_TEST_QUAY_REGISTRY": "127.0.0.1:41002",
    "PROMOTER_TEST_PUBLIC_REGISTRY": "127.0.0.1:41003",
    "AWS_REGION": "us-east-1",
    "AWS_ENDPOINT_URL_ECR": "http://127.0.0.1:41004",
    "AWS_ENDPOINT_URL_ECR_PUBLIC": "http://127.0.0.1:41005",
    "PROMOTER_TEST_APISERVER_HOST": "127.0.0.1",
    "PROMOTER_TEST_APISERVER_PORT": "41006",
}

failures: list[str] = []


def check(condition: bool, what: str) -> None:
    if not condition:
        failures.append(what)


def kube_version() -> str:
    for line in (ROOT / "tests/testenv/go/kube/go.mod").read_text().splitlines():
        words = line.split()
        if len(words) == 3 and words[:2] == ["require", "k8s.io/kubernetes"]:
            return words[2].lstrip("v")
    raise SystemExit("check_chart: no k8s.io/kubernetes version in tests/testenv/go/kube/go.mod")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise SystemExit(f"check_chart: {path} is missing: run 'make tools'")
    return str(path)


def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, input=stdin, capture_output=True, text=True)


def helm_template(values: list[Path], extra: list[str] = ()) -> subprocess.CompletedProcess:
    args = [tool("helm"), "template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", kube_version()]
    for path in values:
        args += ["-f", str(path)]
    return run(args + list(extra))


def render(values: list[Path], extra: list[str] = ()) -> str:
    result = helm_template(values, extra)
    if result.returncode != 0:
        raise SystemExit(f"check_chart: helm template {[p.name for p in values]} {extra} failed:\n{result.stderr}")
    return result.stdout


def objects(rendered: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(docs: list[dict], kind: str, namespace: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (namespace is None or d["metadata"].get("namespace") == namespace)]


def kubeconform(rendered: str, crd_schemas: Path) -> subprocess.CompletedProcess:
    return run(
        [
            tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", kube_version(),
            "-schema-location", f"{KUBE_SCHEMAS}/{LAYOUT}", "-schema-location", f"{crd_schemas}/{LAYOUT}", "-",
        ],
        stdin=rendered,
    )


def deployment(docs: list[dict]) -> dict:
    found = find(docs, "Deployment")
    check(len(found) == 1, f"one Deployment expected, found {len(found)}")
    return found[0]


def container(docs: list[dict]) -> dict:
    return deployment(docs)["spec"]["template"]["spec"]["containers"][0]


def env_names(docs: list[dict]) -> dict:
    return {e["name"]: e.get("value") for e in container(docs).get("env", [])}


def rbac_rules(kind: str) -> list:
    for doc in yaml.safe_load_all((ROOT / "deploy/rbac.yaml").read_text()):
        if doc and doc["kind"] == kind:
            return doc["rules"]
    raise SystemExit(f"check_chart: deploy/rbac.yaml has no {kind}")


# --- what every rendering must hold --------------------------------------------------


# The value sets that leave the user and groups to the platform (OpenShift's restricted-v2).
PLATFORM_ASSIGNS_USER = ("openshift",)


def common(name: str, docs: list[dict]) -> None:
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        # A PrometheusRule may live where Prometheus reads rules (prometheusRule.namespace).
        if kind not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "PrometheusRule"):
            check(meta.get("namespace") == NAMESPACE, f"{name}: {kind} {meta['name']} is not in the release namespace")
    spec = deployment(docs)["spec"]["template"]["spec"]
    pod, ctr = spec["securityContext"], container(docs)["securityContext"]
    user = None if name in PLATFORM_ASSIGNS_USER else 65532
    restricted = (
        pod.get("runAsNonRoot") is True and pod.get("runAsUser") == user and ctr.get("runAsUser") == user
        and pod["seccompProfile"]["type"] == "RuntimeDefault"
        and ctr.get("allowPrivilegeEscalation") is False and ctr.get("readOnlyRootFilesystem") is True
        and ctr["capabilities"]["drop"] == ["ALL"]
    )
    check(restricted, f"{name}: the pod is not `restricted` (non-root {user or 'user left to the platform'}, read-only root, no escalation, drop ALL, RuntimeDefault)")
    probes = container(docs)
    health = next(a.split(":")[-1] for a in probes["args"] if a.startswith("--health-probe-bind-address="))
    check(probes["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": int(health)}, f"{name}: liveness probe is not /healthz on the health port")
    check(probes["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": int(health)}, f"{name}: readiness probe is not /readyz on the health port")
    check("checksum/config" in deployment(docs)["spec"]["template"]["metadata"]["annotations"], f"{name}: no checksum/config")
    config = find(docs, "ConfigMap")[0]["data"]["config.yaml"]
    check(isinstance(yaml.safe_load(config), dict), f"{name}: config.yaml is not a map")
    leases = [r for r in find(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    check(len(leases) == 1 and leases[0]["metadata"]["namespace"] == NAMESPACE, f"{name}: the Lease Role is not in the release namespace only")
    check(leases and leases[0]["rules"] == rbac_rules("Role"), f"{name}: the Lease Role's rules differ from deploy/rbac.yaml")
    crds = find(docs, "CustomResourceDefinition")
    wanted = [d for d in yaml.safe_load_all((ROOT / "crds/imagepromoter.dev.yaml").read_text()) if d]
    check(len(crds) == len(wanted), f"{name}: {len(crds)} CRDs rendered, crds/ has {len(wanted)}")
    for rendered, source in zip(crds, wanted):
        check(rendered["spec"] == source["spec"], f"{name}: CRD {source['metadata']['name']} differs from crds/ after rendering")
        check(rendered["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep", f"{name}: CRD without resource-policy keep")


AGGREGATED = ("-view", "-edit")


def operator_cluster_roles(docs: list[dict]) -> list[dict]:
    return [r for r in find(docs, "ClusterRole") if not r["metadata"]["name"].endswith(AGGREGATED)]


def aggregated(name: str, docs: list[dict]) -> None:
    """`<fullname>-view` and `-edit`: both kinds, the documented verbs and aggregation labels, never /status."""
    roles = {r["metadata"]["name"].rsplit("-", 1)[1]: r for r in find(docs, "ClusterRole") if r["metadata"]["name"].endswith(AGGREGATED)}
    check(sorted(roles) == ["edit", "view"], f"{name}: aggregated ClusterRoles {sorted(roles)}")
    wanted = {
        "view": (["get", "list", "watch"], {"view", "edit", "admin"}),
        "edit": (["create", "update", "patch", "delete"], {"edit", "admin"}),
    }
    for kind, (verbs, into) in wanted.items():
        role = roles.get(kind)
        if not role:
            continue
        labels = {k.rsplit("aggregate-to-", 1)[1] for k, v in role["metadata"]["labels"].items() if "aggregate-to-" in k and v == "true"}
        check(labels == into, f"{name}: -{kind} aggregates to {sorted(labels)}, not {sorted(into)}")
        resources = sorted(r for rule in role["rules"] for r in rule["resources"])
        check(resources == ["imagepromotions", "registrymirrors"], f"{name}: -{kind} covers {resources}")
        check(all(rule["verbs"] == verbs for rule in role["rules"]), f"{name}: -{kind} verbs are not {verbs}")
        check(not any("/" in r for rule in role["rules"] for r in rule["resources"]), f"{name}: -{kind} grants a subresource")


def default(docs: list[dict]) -> None:
    roles = operator_cluster_roles(docs)
    check(len(roles) == 1 and roles[0]["rules"] == rbac_rules("ClusterRole"), "default: the ClusterRole's rules differ from deploy/rbac.yaml")
    aggregated("default", docs)
    config = yaml.safe_load(find(docs, "ConfigMap")[0]["data"]["config.yaml"])
    closed = [{"namespaces": [NAMESPACE], "sources": ["**"], "targets": ["**"]}]
    check(config.get("tenancy") == closed, f"default: tenancy is {config.get('tenancy')}, not only the release namespace")
    check(len(find(docs, "ClusterRoleBinding")) == 1, "default: no ClusterRoleBinding")
    check(deployment(docs)["spec"]["replicas"] == 2, "default: replicas is not 2")
    args = container(docs)["args"]
    check("--leader-elect" in args and f"--leader-election-namespace={NAMESPACE}" in args, "default: leader election is not on")
    timings = ["--leader-election-lease-duration=15s", "--leader-election-renew-deadline=10s", "--leader-election-retry-period=2s"]
    check(all(t in args for t in timings), f"default: the leader-election timings are not the operator's defaults {timings}")
    check(deployment(docs)["spec"].get("revisionHistoryLimit") == 10 and "strategy" not in deployment(docs)["spec"], "default: revisionHistoryLimit is not 10, or a strategy is set")
    check("annotations" not in deployment(docs)["metadata"], "default: the Deployment has annotations")
    check(not any(a.startswith("--watch-namespace") for a in args), "default: watches namespaces")
    check(not any(a.startswith("--watch-label-selector") for a in args), "default: watches a shard")
    check(len(find(docs, "PodDisruptionBudget")) == 1, "default: no PodDisruptionBudget")
    check(not find(docs, "ServiceMonitor") and not find(docs, "NetworkPolicy") and not find(docs, "PrometheusRule"), "default: optional objects rendered")
    check(not deployment(docs)["spec"]["template"]["spec"].get("hostNetwork"), "default: hostNetwork")
    check(find(docs, "Service")[0]["spec"]["ports"][0]["targetPort"] == 8080, "default: the Service does not serve metrics")
    check([p["name"] for p in container(docs)["ports"]] == ["metrics", "health"], "default: the container does not declare its ports")
    check("--share-ports" not in container(docs)["args"], "default: shares its ports")


def watch_namespaces(docs: list[dict]) -> None:
    check(not operator_cluster_roles(docs) and not find(docs, "ClusterRoleBinding"), "watch-namespaces: a ClusterRole is rendered")
    for namespace in ("team-a", "team-b"):
        roles = find(docs, "Role", namespace)
        check(len(roles) == 1 and roles[0]["rules"] == rbac_rules("ClusterRole"), f"watch-namespaces: no Role with the operator's rules in {namespace}")
        check(len(find(docs, "RoleBinding", namespace)) == 1, f"watch-namespaces: no RoleBinding in {namespace}")
    args = container(docs)["args"]
    check("--watch-namespace=team-a" in args and "--watch-namespace=team-b" in args, "watch-namespaces: flags missing")


def everything(docs: list[dict]) -> None:
    aggregated("everything", docs)
    tenancy = yaml.safe_load(find(docs, "ConfigMap")[0]["data"]["config.yaml"])["tenancy"]
    check([rule["namespaces"] for rule in tenancy] == [["payments", "payments-*"]], f"everything: tenancy {tenancy} is not the one given")
    check(len(find(docs, "ServiceMonitor")) == 1, "everything: no ServiceMonitor")
    spec = deployment(docs)["spec"]
    check(spec.get("strategy") == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}, f"everything: strategy {spec.get('strategy')}")
    check(spec.get("revisionHistoryLimit") == 3, "everything: revisionHistoryLimit is not 3")
    check(deployment(docs)["metadata"].get("annotations") == {"argocd.argoproj.io/sync-wave": "1"}, "everything: deploymentAnnotations not on the Deployment")
    check("argocd.argoproj.io/sync-wave" not in spec["template"]["metadata"]["annotations"], "everything: deploymentAnnotations leaked onto the pods")
    timings = ["--leader-election-lease-duration=30s", "--leader-election-renew-deadline=20s", "--leader-election-retry-period=5s"]
    check(all(t in container(docs)["args"] for t in timings), "everything: the leader-election timings are not passed")
    check(find(docs, "ServiceAccount")[0]["metadata"]["labels"].get("azure.workload.identity/use") == "true", "everything: serviceAccount.labels missing")
    rules = find(docs, "PrometheusRule")
    check(len(rules) == 1, "everything: no PrometheusRule")
    if rules:
        meta, group = rules[0]["metadata"], rules[0]["spec"]["groups"][0]
        check(meta["namespace"] == "monitoring" and meta["labels"].get("release") == "prometheus", "everything: PrometheusRule not in prometheusRule.namespace with its labels")
        check(meta.get("annotations") == {"owner": "release-engineering"}, "everything: PrometheusRule annotations")
        alerts = {r["alert"]: r for r in group["rules"] if "alert" in r}
        check("ImagePromoterSeveralLeaders" not in alerts and "ImagePromoterNoLeader" in alerts, f"everything: disabled alerts rendered: {sorted(alerts)}")
        check(all(r["labels"].get("team") == "release-engineering" for r in alerts.values()), "everything: additionalLabels not on every alert")
        check(alerts["ImagePromoterNoLeader"]["annotations"].get("runbook_url") == "https://runbooks.example.com/image-promoter#imagepromoternoleader", "everything: runbook_url")
        check(alerts["ImagePromoterPromotionsStalled"]["for"] == "1h" and "> 0.25" in alerts["ImagePromoterRegistryThrottled"]["expr"], "everything: stalledFor or throttledRatio not used")
        check(any(r.get("record") == "image_promoter:registry_requests:rate5m" for r in group["rules"]), "everything: additionalRules not appended")
        check(all('job="promoter-metrics",namespace="image-promoter"' in r["expr"] for r in alerts.values()), "everything: an alert does not select the ServiceMonitor's job")
    args = container(docs)["args"]
    check("--watch-label-selector=sharding.fluxcd.io/key=shard1" in args and "--leader-election-id=promoter-leader" in args, "everything: the shard's selector or its Lease missing")
    policy = find(docs, "NetworkPolicy")
    check(len(policy) == 1 and policy[0]["spec"]["policyTypes"] == ["Ingress", "Egress"], "everything: no NetworkPolicy restricting egress")
    env = env_names(docs)
    check(env.get("SSL_CERT_FILE") == "/etc/image-promoter/ca/bundle.pem", "everything: SSL_CERT_FILE is not the CA bundle")
    check(env.get("HTTPS_PROXY") == "http://proxy.internal:3128" and "NO_PROXY" in env, "everything: proxy variables missing")
    check(container(docs)["image"].endswith("@sha256:6b3c1e0a4f2d8c9b7a5e3f1d0c2b4a6987e5d3c1b0a2f4e6d8c0b2a4f6e8d0c2"), "everything: not pulled by digest")
    account = find(docs, "ServiceAccount")[0]
    check(account["metadata"]["annotations"].get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::"), "everything: no IRSA annotation")
    spread = deployment(docs)["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    check(spread["labelSelector"]["matchLabels"].get("app.kubernetes.io/instance") == RELEASE, "everything: spread constraint without the pods' labels")
    check(any(v["name"] == "ca-bundle" and v["secret"]["secretName"] == "corporate-ca" for v in deployment(docs)["spec"]["template"]["spec"]["volumes"]), "everything: CA bundle not mounted")


def testworld(docs: list[dict]) -> None:
    spec = deployment(docs)["spec"]["template"]["spec"]
    check(spec.get("hostNetwork") is True and spec.get("dnsPolicy") == "ClusterFirstWithHostNet", "testworld: not hostNetwork with ClusterFirstWithHostNet")
    check(spec.get("runtimeClassName") == "testenv-host-network", "testworld: runtimeClassName")
    # Two replicas on the one node: no host ports (they would keep the second off it),
    # and both listen on the shared ports.
    check("ports" not in container(docs) and "--share-ports" in container(docs)["args"], "testworld: host ports declared, or the ports not shared")
    env = env_names(docs)
    check(env.get("KUBERNETES_SERVICE_HOST") == "127.0.0.1" and env.get("KUBERNETES_SERVICE_PORT") == "41006", "testworld: apiserver address not given")
    check(container(docs)["image"] == SAMPLE_WORLD["IMAGE"], "testworld: image is not $IMAGE")
    config = yaml.safe_load(find(docs, "ConfigMap")[0]["data"]["config.yaml"])
    hosts = [r["host"] for r in config["registries"]]
    check(hosts == ["127.0.0.1:41001", "127.0.0.1:41002", "127.0.0.1:41003"], f"testworld: registries {hosts}")


def openshift(docs: list[dict]) -> None:
    spec = deployment(docs)["spec"]
    pod, ctr = spec["template"]["spec"]["securityContext"], container(docs)["securityContext"]
    assigned = {k: v for k, v in {**pod, **ctr}.items() if k in ("runAsUser", "runAsGroup", "fsGroup")}
    check(not assigned, f"openshift: the chart still sets {assigned}; restricted-v2 assigns them")
    check(pod.get("runAsNonRoot") is True and ctr.get("runAsNonRoot") is True, "openshift: runAsNonRoot dropped with the user")
    check(spec.get("strategy") == {"type": "Recreate"}, "openshift: strategy Recreate not used")


EXPECTATIONS = {"default": default, "watch-namespaces": watch_namespaces, "everything": everything, "testworld": testworld, "openshift": openshift}


# --- the checks ------------------------------------------------------------------------


def copies() -> None:
    for source, copy_ in (("crds/imagepromoter.dev.yaml", "files/crds.yaml"), ("deploy/rbac.yaml", "files/rbac.yaml")):
        same = (ROOT / source).read_bytes() == (CHART / copy_).read_bytes()
        check(same, f"charts/image-promoter/{copy_} differs from {source}: run 'make chart-sync' and commit")


def value_sets(work: Path) -> dict[str, Path]:
    sets = {path.stem: path for path in sorted((HERE / "values").glob("*.yaml"))}
    filled = work / "testworld-values.yaml"
    filled.write_text(testworld_values.fill((HERE / "testworld-values.yaml").read_text(), testworld_values.environment_from(SAMPLE_WORLD)))
    sets["testworld"] = filled
    return sets


def renderings(sets: dict[str, Path], crd_schemas: Path) -> int:
    validated = 0
    for name, path in sets.items():
        lint = run([tool("helm"), "lint", "--strict", str(CHART), "-n", NAMESPACE, "--kube-version", kube_version(), "-f", str(path)])
        check(lint.returncode == 0, f"{name}: helm lint --strict failed:\n{lint.stdout}{lint.stderr}")
        rendered = render([path])
        result = kubeconform(rendered, crd_schemas)
        check(result.returncode == 0, f"{name}: kubeconform refused the rendering:\n{result.stdout}{result.stderr}")
        docs = objects(rendered)
        validated += len(docs)
        common(name, docs)
        EXPECTATIONS.get(name, lambda _: check(False, f"{name}: no expectations for this value set"))(docs)
        print(f"check_chart: {name}: {len(docs)} objects valid ({result.stdout.strip().splitlines()[-1]})")
    return validated


def switches(default_values: Path) -> None:
    without = objects(render([default_values], ["--set", "crds.install=false"]))
    check(not find(without, "CustomResourceDefinition"), "crds.install=false still renders CRDs")
    unkept = objects(render([default_values], ["--set", "crds.keep=false"]))
    check(all("helm.sh/resource-policy" not in (c["metadata"].get("annotations") or {}) for c in find(unkept, "CustomResourceDefinition")), "crds.keep=false still keeps")
    before = deployment(objects(render([default_values])))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    after = deployment(objects(render([default_values], ["--set", "config.verify.encryption=KMS"])))["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    check(before != after, "a changed config does not change checksum/config (pods would not roll)")
    single = objects(render([default_values], ["--set", "replicaCount=1", "--set", "leaderElection.enabled=false"]))
    check(not find(single, "PodDisruptionBudget") and "--leader-elect" not in container(single)["args"], "one replica without a Lease still renders a PDB or --leader-elect")
    opened = objects(render([default_values], ["--set", "defaultTenancy=open"]))
    check("tenancy" not in yaml.safe_load(find(opened, "ConfigMap")[0]["data"]["config.yaml"]), "defaultTenancy=open still writes a tenancy section")
    granted = objects(render([default_values], ["--set-json", 'config.tenancy=[{"namespaces":["team-a"],"targets":["quay.io/acme/*"]}]']))
    tenancy = yaml.safe_load(find(granted, "ConfigMap")[0]["data"]["config.yaml"])["tenancy"]
    check(tenancy == [{"namespaces": ["team-a"], "targets": ["quay.io/acme/*"]}], f"config.tenancy is not used as written: {tenancy}")
    unaggregated = objects(render([default_values], ["--set", "rbac.aggregateClusterRoles=false"]))
    check(len(find(unaggregated, "ClusterRole")) == 1, "rbac.aggregateClusterRoles=false still renders the -view and -edit roles")


def refusals(crd_schemas: Path) -> None:
    for path in sorted((HERE / "refused").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        check(first.startswith("# refused: "), f"{path.name}: first line must be '# refused: <message>'")
        expected = first.removeprefix("# refused: ")
        result = helm_template([path])
        check(result.returncode != 0 and expected in result.stderr, f"{path.name}: not refused with {expected!r}:\n{result.stderr}")
    docs = objects(render([HERE / "values/default.yaml"]))
    for mutation, field in (
        (lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolicyy="Always"), "imagePullPolicyy"),
        (lambda d: d["spec"].update(replicas="two"), "/spec/replicas"),
    ):
        broken = copy.deepcopy(docs)
        mutation(deployment(broken))
        result = kubeconform(yaml.safe_dump_all(broken), crd_schemas)
        check(result.returncode != 0 and field in result.stdout, f"kubeconform accepted a Deployment with a bad {field}:\n{result.stdout}")
    alerting = objects(render([HERE / "values/everything.yaml"]))
    for rule in find(alerting, "PrometheusRule"):
        rule["spec"]["groups"][0]["rules"][0]["fors"] = "5m"
    result = kubeconform(yaml.safe_dump_all(alerting), crd_schemas)
    check(result.returncode != 0 and "fors" in result.stdout, f"kubeconform accepted a PrometheusRule with an unknown field:\n{result.stdout}")
    example = yaml.safe_load((ROOT / "examples/imagepromotion-by-digest.yaml").read_text())
    example["spec"]["targets"][0]["tagz"] = ["1"]
    result = kubeconform(yaml.safe_dump(example), crd_schemas)
    check(result.returncode != 0 and "tagz" in result.stdout, f"kubeconform accepted an ImagePromotion with an unknown field:\n{result.stdout}")
    print("check_chart: refusals: every bad value set, rendering and object was refused")


def examples(crd_schemas: Path) -> None:
    text = "\n---\n".join(p.read_text() for p in sorted((ROOT / "examples").glob("*.yaml")))
    result = kubeconform(text, crd_schemas)
    check(result.returncode == 0, f"examples/ do not match the CRDs:\n{result.stdout}")


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run([tool("kubectl"), *args], stdin)


def server_dry_run(sets: dict[str, Path]) -> None:
    if not os.environ.get("KUBECONFIG"):
        raise SystemExit("check_chart: --server needs the test world: source target/testenv/env (make env-up)")
    namespace = f"chart-check-{uuid.uuid4().hex[:8]}"
    watched = [f"{namespace}-a", f"{namespace}-b"]
    created = [namespace, *watched]
    try:
        for name in created:
            made = kubectl("create", "namespace", name)
            check(made.returncode == 0, f"server: cannot create namespace {name}: {made.stderr}")
        kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
        for name, path in sets.items():
            extra = ["--set", f"watchNamespaces={{{','.join(watched)}}}"] if name == "watch-namespaces" else []
            result = run(
                [tool("helm"), "template", RELEASE, str(CHART), "-n", namespace, "--kube-version", kube_version(), "-f", str(path), *extra]
            )
            check(result.returncode == 0, f"server: {name}: helm template failed: {result.stderr}")
            docs = [d for d in objects(result.stdout) if d["kind"] not in ("ServiceMonitor", "PrometheusRule")]
            applied = kubectl("apply", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs))
            check(applied.returncode == 0, f"server: {name}: the API server refused the rendering:\n{applied.stderr}")
            if name in ("default", "testworld", *PLATFORM_ASSIGNS_USER):
                pod_admitted(name, namespace, docs)
            print(f"check_chart: server: {name}: {len(docs)} objects accepted by the API server (dry run)")
        # The Pod Security level is really enforced: without its RuntimeClass the
        # test world's hostNetwork pod is refused.
        docs = objects(render([sets["testworld"]], ["--set", "runtimeClassName="]))
        refused = pod_dry_run(namespace, docs)
        check(refused.returncode != 0 and "hostNetwork" in refused.stderr, f"server: a hostNetwork pod was admitted by `restricted`:\n{refused.stderr}")
    finally:
        for name in created:
            kubectl("delete", "namespace", name, "--wait=false")


def pod_dry_run(namespace: str, docs: list[dict]) -> subprocess.CompletedProcess:
    template = deployment(docs)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator", "namespace": namespace, "labels": template["metadata"]["labels"]}, "spec": template["spec"]}
    return kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(pod))


def pod_admitted(name: str, namespace: str, docs: list[dict]) -> None:
    account = find(docs, "ServiceAccount")[0]
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account["metadata"]["name"], "namespace": namespace}}
    made = kubectl("apply", "-f", "-", stdin=json.dumps(account))
    check(made.returncode == 0, f"server: {name}: cannot create the ServiceAccount: {made.stderr}")
    admitted = pod_dry_run(namespace, docs)
    check(admitted.returncode == 0, f"server: {name}: the operator's pod is not admitted in a `restricted` namespace:\n{admitted.stderr}")


ALERTS_TEST = HERE / "alerts_test.yaml"


def alerts(work: Path, sets: dict[str, Path]) -> None:
    """The PrometheusRule's group through promtool: `check rules` on every rendering
    that has one, and the unit tests of alerts_test.yaml on the default alerts (release
    `promoter` in `image-promoter`, so they select job="promoter-image-promoter-metrics")."""
    promtool = tool("promtool")
    for name, path in sets.items():
        for rule in find(objects(render([path])), "PrometheusRule"):
            rules = work / f"rules-{name}.yaml"
            rules.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
            checked = run([promtool, "check", "rules", str(rules)])
            check(checked.returncode == 0, f"{name}: promtool check rules refused the PrometheusRule:\n{checked.stdout}{checked.stderr}")
    docs = objects(render([HERE / "values/default.yaml"], ["--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true"]))
    rule = find(docs, "PrometheusRule")
    check(len(rule) == 1 and rule[0]["metadata"]["namespace"] == NAMESPACE, "alerts: prometheusRule.enabled renders no PrometheusRule in the release namespace")
    if not rule:
        return
    (work / "alerts.yaml").write_text(yaml.safe_dump({"groups": rule[0]["spec"]["groups"]}))
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    check(tests.get("rule_files") == ["alerts.yaml"], f"{ALERTS_TEST.name}: rule_files must be [alerts.yaml] (the group taken from the rendering)")
    (work / ALERTS_TEST.name).write_text(ALERTS_TEST.read_text())
    checked = run([promtool, "check", "rules", str(work / "alerts.yaml")])
    check(checked.returncode == 0, f"alerts: promtool check rules:\n{checked.stdout}{checked.stderr}")
    tested = run([promtool, "test", "rules", str(work / ALERTS_TEST.name)])
    check(tested.returncode == 0, f"alerts: promtool test rules {ALERTS_TEST.name}:\n{tested.stdout}{tested.stderr}")
    rendered = {r["alert"] for g in rule[0]["spec"]["groups"] for r in g["rules"] if "alert" in r}
    fired = {
        alert["labels"]["alertname"] if "alertname" in alert.get("labels", {}) else case["alertname"]
        for group in tests["tests"] for case in group.get("alert_rule_test", []) for alert in case.get("exp_alerts", [])
    }
    check(rendered <= fired, f"alerts: no test in {ALERTS_TEST.name} makes {sorted(rendered - fired)} fire")
    check(fired <= rendered, f"alerts: {ALERTS_TEST.name} tests alerts the chart does not render: {sorted(fired - rendered)}")
    print(f"check_chart: alerts: {len(rendered)} alerts pass promtool check rules; {tested.stdout.strip().splitlines()[-1] if tested.stdout.strip() else 'no output'}")


def main() -> None:
    if not (KUBE_SCHEMAS / "deployment-apps-v1.json").exists():
        raise SystemExit(f"check_chart: no Kubernetes schemas in {KUBE_SCHEMAS}: run 'make tools'")
    copies()
    try:
        values_doc.main([str(CHART), "--check"])
    except SystemExit as error:
        failures.append(str(error))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        crd_schemas = work / "crd-schemas"
        crd_schemas.mkdir()
        kube_schemas.from_crds(crd_schemas, [ROOT / "crds/imagepromoter.dev.yaml"])
        sets = value_sets(work)
        count = renderings(sets, crd_schemas)
        switches(sets["default"])
        refusals(crd_schemas)
        examples(crd_schemas)
        alerts(work, sets)
        if "--server" in sys.argv[1:]:
            server_dry_run(sets)
    if failures:
        print("\n".join(f"FAIL {f}" for f in failures), file=sys.stderr)
        raise SystemExit(f"check_chart: {len(failures)} failure(s)")
    print(f"check_chart: ok: {len(sets)} value sets, {count} objects validated against Kubernetes {kube_version()} and the CRDs")


if __name__ == "__main__":
    main()
