"""Starts, reuses and stops the local test world of image-promoter.

Every component is a plain process on 127.0.0.1, started from the state folder
`target/testenv/` and stopped by the PID recorded there:

* etcd + kube-apiserver (Node and RBAC authorization, Pod Security admission,
  static tokens, service-account signing keys);
* a node: containerd + runc (Debian's), the kubelet, kube-controller-manager and
  kube-scheduler; a bridge CNI network for ordinary pods, hostNetwork for pods
  that must reach the world's 127.0.0.1 services (see "the node" below);
* moto (the ECR API) and the ECR Public stand-in with its registry token issuer;
* three CNCF distribution registries over TLS (a test CA and a leaf certificate):
  "internal ECR" (basic auth: user AWS, password = the token moto issues),
  "Quay" (an htpasswd robot account) and "ECR Public" (bearer-token challenge).

`up` is idempotent: what already runs and answers is reused. `PROMOTER_TESTENV_NODE=0`
starts a world without the node, for a second world on the same machine (one machine
runs one node); the node's tests then fail, as they must, for want of it. It writes
`target/testenv/env` (`export KEY=VALUE` lines for tests and shells) and a docker
`config.json` with every registry's credentials. `PROMOTER_TESTENV_ARGOCD=1` (`make
env-up-argocd`) adds Argo CD and its Redis (see "Argo CD" below); a later `up` keeps it.
`private FOLDER up|down|stop NAME` runs a private control plane beside it (see "a private control
plane" below; with its own Argo CD only when `PROMOTER_TESTENV_PRIVATE_ARGOCD=1`). `down` stops everything and
checks that nothing is left behind: no process, mount, network namespace,
container or pod cgroup.

The binaries come from `tests/testenv/install-tools.sh` (`make tools`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("PROMOTER_TESTENV_DIR", ROOT / "target" / "testenv"))
BIN = STATE / "bin"
CERTS = STATE / "certs"
LOGS = STATE / "logs"
STATE_FILE = STATE / "state.json"

ACCOUNT = "123456789012"
REGION = "us-east-1"
PUBLIC_ALIAS = "promoter-test"
# A second account on the ECR Public stand-in with an alias of its own: another
# organisation's registry on the same host, which the operator's identity must not touch.
PUBLIC_FOREIGN_ALIAS = "other-org"
PUBLIC_FOREIGN_ACCOUNT = "210987654321"
PUBLIC_FOREIGN_ACCESS_KEY = "foreign-testing"
PUBLIC_SERVICE = "ecr-public-test"
PUBLIC_ISSUER = "ecr-public-standin"
QUAY_USER = "promoter+robot"
ADMIN_USER = "promoter-admin"
START_TIMEOUT = 90.0

# The node: one kubelet on containerd, named "localhost" (see start_kubelet).
NODE = STATE / "node"
NODE_NAME = "localhost"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
# Pods of this RuntimeClass are exempt from Pod Security admission: the only way a
# hostNetwork pod (one that reaches the world's 127.0.0.1 services) runs in a
# namespace that enforces `restricted`.
HOST_NETWORK_RUNTIME_CLASS = "testenv-host-network"
SANDBOX_IMAGE = "testenv.local/pause:busybox"
BRIDGE = "promoter0"
POD_SUBNET = "10.244.0.0/24"
SERVICE_SUBNET = "10.96.0.0/24"
# Kernel settings the kubelet sets once, at start (it has no option to leave
# them): the machine is shared, so their values before are recorded and put back
# as soon as the node is Ready, and again when it stops.
KUBELET_SYSCTLS = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
]
# Host paths the kubelet and containerd use whatever their configuration says
# (the device-plugin socket, container log links, the CNI result cache, shim
# sockets): emptied of what the node left and removed when empty.
HOST_FOLDERS = [
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),
    Path("/var/lib/cni/results"),
    Path("/var/lib/cni"),
    Path("/run/containerd/s"),
    Path("/run/containerd"),
]
# Identities of the control plane's clients: static tokens (user, groups).
COMPONENT_USERS = {
    "kube-controller-manager": ("system:kube-controller-manager", ""),
    "kube-scheduler": ("system:kube-scheduler", ""),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
}


def log(message: str) -> None:
    print(f"testenv: {message}", flush=True)


def free_port() -> int:
    """A free port below the kernel's ephemeral range.

    Ports are chosen now and bound later by another process; a port from the
    ephemeral range could be taken meanwhile by any outgoing connection."""
    low, _ = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    floor = 10000
    candidates = list(range(floor, max(floor + 1000, low)))
    random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit(f"testenv: no free port between {floor} and {low}")


def wait_until(what: str, check: Callable[[], bool], logfile: Path | None = None, timeout: float = START_TIMEOUT) -> None:
    """Polls `check` until it holds; fails with the component's log tail otherwise."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ssl.SSLError):
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    tail = ""
    if logfile and logfile.exists():
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
    raise SystemExit(f"testenv: {what} did not become ready within {timeout:.0f}s\n{tail}")


def http_status(url: str, token: str | None = None, context: ssl.SSLContext | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


# --- certificates -----------------------------------------------------------------


def make_certificates() -> None:
    """A CA and the leaves the world needs; each is made once, when missing.

    Serving leaf for 127.0.0.1/localhost (registries, token realm, apiserver,
    kubelet, controller manager, scheduler), a token-signing leaf, the
    apiserver's client certificate for the kubelet, service-account keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
    import ipaddress

    CERTS.mkdir(parents=True, exist_ok=True)
    ca, ca_key = certificate_authority()
    if not (CERTS / "server.pem").exists():
        issue_leaf(
            "server",
            ca,
            ca_key,
            "127.0.0.1",
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        )
    if not (CERTS / "token-signer.pem").exists():
        issue_leaf("token-signer", ca, ca_key, "ecr-public token issuer", ExtendedKeyUsageOID.CODE_SIGNING, None)
    if not (CERTS / "kubelet-client.pem").exists():
        # The kubelet authenticates the apiserver by this certificate and asks the
        # apiserver (RBAC) what the user may do: logs, exec, port-forward.
        issue_leaf("kubelet-client", ca, ca_key, KUBELET_CLIENT_USER, ExtendedKeyUsageOID.CLIENT_AUTH, None)
    if not (CERTS / "service-account.pub").exists():
        from cryptography.hazmat.primitives import serialization

        sa_key = ec.generate_private_key(ec.SECP256R1())
        write_key("service-account.key", sa_key)
        (CERTS / "service-account.pub").write_bytes(
            sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


def write_key(name: str, key) -> None:
    from cryptography.hazmat.primitives import serialization

    path = CERTS / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    path.chmod(0o600)


def certificate_name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "image-promoter test world"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def validity() -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    return now, now + dt.timedelta(days=3650)


def certificate_authority():
    """The test CA, made on first use and loaded afterwards."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if (CERTS / "ca.pem").exists() and (CERTS / "ca.key").exists():
        ca = x509.load_pem_x509_certificate((CERTS / "ca.pem").read_bytes())
        return ca, serialization.load_pem_private_key((CERTS / "ca.key").read_bytes(), None)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = validity()
    ca = (
        x509.CertificateBuilder()
        .subject_name(certificate_name("image-promoter test CA"))
        .issuer_name(certificate_name("image-promoter test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_key("ca.key", ca_key)
    (CERTS / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca, ca_key


def issue_leaf(file: str, ca, ca_key, cn: str, usage, sans) -> None:
    """Writes `<file>.pem` and `<file>.key`: a leaf the test CA signs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = validity()
    builder = (
        x509.CertificateBuilder()
        .subject_name(certificate_name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    write_key(f"{file}.key", key)
    (CERTS / f"{file}.pem").write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CERTS / "ca.pem"))


# --- process bookkeeping ----------------------------------------------------------


class World:
    """The recorded state: ports, secrets and PIDs of the running components."""

    def __init__(self) -> None:
        self.data: dict = json.loads(STATE_FILE.read_text()) if STATE_FILE.exists() else {}
        self.data.setdefault("ports", {})
        self.data.setdefault("pids", {})
        self.data.setdefault("secrets", {})
        self.data.setdefault("commands", {})

    def save(self) -> None:
        STATE_FILE.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")

    def port(self, name: str) -> int:
        ports = self.data["ports"]
        if name not in ports:
            ports[name] = free_port()
        return ports[name]

    def secret(self, name: str) -> str:
        secrets_ = self.data["secrets"]
        if name not in secrets_:
            secrets_[name] = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
        return secrets_[name]

    def running(self, name: str) -> bool:
        pid = self.data["pids"].get(name)
        return pid is not None and process_matches(pid, name)

    def stop(self, name: str, grace: float = 15) -> None:
        pid = self.data["pids"].pop(name, None)
        if pid is None or not process_matches(pid, name):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while process_matches(pid, name) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_matches(pid, name):
            os.killpg(pid, signal.SIGKILL)
        log(f"{name}: stopped pid {pid}")

    def start(
        self,
        name: str,
        argv: list[str],
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        config: str | None = None,
    ) -> None:
        """Starts `argv` as component `name` unless it runs with the same command.

        The resolved binary is part of the command, and so is `config` (the text of
        a configuration file the flags name): a rebuilt tool or a changed
        configuration restarts the process."""
        command = [os.path.realpath(argv[0])] + argv[1:]
        if config is not None:
            command.append("#config " + hashlib.sha256(config.encode()).hexdigest())
        if self.running(name) and self.data["commands"].get(name) != command:
            log(f"{name}: binary or flags changed, restarting")
            self.stop(name)
        if self.running(name):
            wait_until(name, ready, LOGS / f"{name}.log", timeout=15)
            log(f"{name}: reusing pid {self.data['pids'][name]}")
            return
        LOGS.mkdir(parents=True, exist_ok=True)
        logfile = LOGS / f"{name}.log"
        with open(logfile, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=STATE,
                env={**os.environ, **(env or {}), "PROMOTER_TESTENV_COMPONENT": name},
                start_new_session=True,
            )
        self.data["pids"][name] = process.pid
        self.data["commands"][name] = command
        self.save()
        started = time.monotonic()

        def alive_and_ready() -> bool:
            if process.poll() is not None:
                tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-30:])
                raise SystemExit(f"testenv: {name} exited with {process.returncode}\n{tail}")
            return ready()

        wait_until(name, alive_and_ready, logfile)
        log(f"{name}: started pid {process.pid} in {time.monotonic() - started:.1f}s")


def process_matches(pid: int, name: str) -> bool:
    """True when `pid` is alive and is the component we started (not a reused PID)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"PROMOTER_TESTENV_COMPONENT={name}".encode() in environ.split(b"\0")


def tool(name: str) -> str:
    # A private control plane's folder may hold tools of its own (bin/); the
    # shared world's are the default.
    own = STATE / "bin" / name
    path = own if own.exists() else BIN / name
    if not path.exists():
        raise SystemExit(f"testenv: {path} is missing; run `make tools` first")
    return str(path)


# --- components -------------------------------------------------------------------


def start_etcd(world: World) -> str:
    client, peer = world.port("etcd"), world.port("etcd-peer")
    data = STATE / "etcd"
    if not world.running("etcd") and data.exists():
        subprocess.run(["rm", "-rf", str(data)], check=True)
    url = f"http://127.0.0.1:{client}"
    world.start(
        "etcd",
        [
            tool("etcd"),
            "--name=testenv",
            f"--data-dir={data}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=testenv=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ],
        lambda: http_status(f"{url}/health") == 200,
    )
    return url


def start_apiserver(world: World, etcd_url: str, extra: list[str] | None = None) -> str:
    port = world.port("kube-apiserver")
    token = world.secret("admin-token")
    kube = STATE / "kube"
    kube.mkdir(parents=True, exist_ok=True)
    tokens = kube / "tokens.csv"
    lines = [f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"']
    for component, (user, groups) in COMPONENT_USERS.items():
        lines.append(f'{world.secret(component + "-token")},{user},{user},"{groups}"')
    tokens.write_text("\n".join(lines) + "\n")
    tokens.chmod(0o600)
    admission = kube / "admission.json"
    admission.write_text(json.dumps(admission_configuration(), indent=2) + "\n")
    url = f"https://127.0.0.1:{port}"
    world.start(
        "kube-apiserver",
        [
            tool("kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--advertise-address=127.0.0.1",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={kube / 'certs'}",
            f"--tls-cert-file={CERTS / 'server.pem'}",
            f"--tls-private-key-file={CERTS / 'server.key'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--admission-control-config-file={admission}",
            f"--service-account-key-file={CERTS / 'service-account.pub'}",
            f"--service-account-signing-key-file={CERTS / 'service-account.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            # logs, exec and port-forward: the apiserver dials the kubelet by the node's
            # Hostname address ("localhost"), verifies its serving certificate with the
            # test CA and presents a client certificate the kubelet authorizes.
            f"--kubelet-client-certificate={CERTS / 'kubelet-client.pem'}",
            f"--kubelet-client-key={CERTS / 'kubelet-client.key'}",
            f"--kubelet-certificate-authority={CERTS / 'ca.pem'}",
            "--kubelet-preferred-address-types=Hostname",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--v=0",
            *(extra or []),
        ],
        lambda: http_status(f"{url}/readyz", token, tls_context()) == 200,
    )
    path = kube / "kubeconfig"
    write_kubeconfig(path, url, ADMIN_USER, token, namespace="default")
    return str(path)


def write_kubeconfig(path: Path, url: str, user: str, token: str, namespace: str | None = None) -> None:
    context = {"cluster": "testenv", "user": user}
    if namespace:
        context["namespace"] = namespace
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": url, "certificate-authority": str(CERTS / "ca.pem")}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": context}],
        "current-context": "testenv",
    }
    path.write_text(json.dumps(kubeconfig, indent=2) + "\n")
    path.chmod(0o600)


def admission_configuration() -> dict:
    """Pod Security admission as on a cluster (namespaces opt in with labels), but
    pods of the host-network RuntimeClass are exempt (see HOST_NETWORK_RUNTIME_CLASS)."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "PodSecurity",
                "configuration": {
                    "apiVersion": "pod-security.admission.config.k8s.io/v1",
                    "kind": "PodSecurityConfiguration",
                    "defaults": {
                        "enforce": "privileged",
                        "enforce-version": "latest",
                        "audit": "privileged",
                        "audit-version": "latest",
                        "warn": "privileged",
                        "warn-version": "latest",
                    },
                    "exemptions": {"usernames": [], "namespaces": [], "runtimeClasses": [HOST_NETWORK_RUNTIME_CLASS]},
                },
            }
        ],
    }


def start_moto(world: World) -> str:
    port = world.port("moto")
    url = f"http://127.0.0.1:{port}"
    world.start(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        lambda: http_status(f"{url}/moto-api/data.json") == 200,
    )
    return url


def ecr_password(moto_url: str) -> str:
    """The registry password moto's GetAuthorizationToken hands out for the account."""
    import boto3

    ecr = boto3.client(
        "ecr", endpoint_url=moto_url, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS", f"unexpected ECR user {user!r}"
    return password


def htpasswd(path: Path, user: str, password: str) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode()
    path.write_text(f"{user}:{hashed}\n")
    path.chmod(0o600)


def start_registry(world: World, name: str, auth: dict) -> str:
    port = world.port(name)
    folder = STATE / "registries" / name
    (folder / "storage").mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(folder / "storage")}, "delete": {"enabled": True}},
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": world.secret(f"{name}-http-secret"),
            "tls": {"certificate": str(CERTS / "server.pem"), "key": str(CERTS / "server.key")},
        },
        "auth": auth,
    }
    (folder / "config.yml").write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    world.start(
        name,
        [tool("registry"), "serve", str(folder / "config.yml")],
        lambda: http_status(f"https://127.0.0.1:{port}/v2/", context=tls_context()) == 401,
        env={"OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"},
    )
    return f"127.0.0.1:{port}"


def start_ecr_public(world: World, registry: str, state_file: Path | None = None) -> tuple[str, str]:
    api, realm = world.port("ecr-public-api"), world.port("ecr-public-token")
    url = f"http://127.0.0.1:{api}"
    world.start(
        "ecr-public",
        [
            sys.executable,
            str(HERE / "ecr_public_standin.py"),
            f"--api-port={api}",
            f"--token-port={realm}",
            f"--registry={registry}",
            f"--alias={PUBLIC_ALIAS}",
            f"--account={ACCOUNT}",
            f"--foreign={PUBLIC_FOREIGN_ACCESS_KEY}={PUBLIC_FOREIGN_ACCOUNT}:{PUBLIC_FOREIGN_ALIAS}",
            f"--service={PUBLIC_SERVICE}",
            f"--issuer={PUBLIC_ISSUER}",
            f"--signing-key={CERTS / 'token-signer.key'}",
            f"--signing-cert={CERTS / 'token-signer.pem'}",
            f"--tls-cert={CERTS / 'server.pem'}",
            f"--tls-key={CERTS / 'server.key'}",
            f"--ca={CERTS / 'ca.pem'}",
            *([f"--state-file={state_file}"] if state_file else []),
        ],
        lambda: http_status(f"https://127.0.0.1:{realm}/token?service={PUBLIC_SERVICE}", context=tls_context()) == 200,
    )
    return url, f"https://127.0.0.1:{realm}/token"


def ecr_public_token(api_url: str) -> str:
    import boto3

    client = boto3.client(
        "ecr-public", endpoint_url=api_url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    data = client.get_authorization_token()["authorizationData"]
    return base64.b64decode(data["authorizationToken"]).decode().partition(":")[2]


# --- images -----------------------------------------------------------------------


def busybox_image() -> tuple[str, dict[str, bytes], bytes]:
    """An OCI image of Debian's static busybox, built here without Docker.

    One uncompressed layer (`/bin/busybox`, `/bin/sh`), reproducible byte for
    byte; by default it sleeps, so it also serves as the node's sandbox ("pause")
    image. Returns (busybox version, blobs by digest, manifest)."""
    binary = Path(os.path.realpath(tool("busybox"))).read_bytes()
    version = re.search(rb"BusyBox v(\d+\.\d+\.\d+)", binary).group(1).decode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry, kind, data in [("bin", tarfile.DIRTYPE, None), ("bin/busybox", tarfile.REGTYPE, binary), ("bin/sh", tarfile.SYMTYPE, None)]:
            info = tarfile.TarInfo(entry)
            info.type, info.mtime, info.mode = kind, 0, 0o755
            if kind == tarfile.SYMTYPE:
                info.linkname = "busybox"
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    layer = buffer.getvalue()
    machine = os.uname().machine
    config = json.dumps(
        {
            "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
            "os": "linux",
            "config": {"Cmd": ["/bin/busybox", "sleep", "inf"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256_digest(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    return version, {sha256_digest(config): config, sha256_digest(layer): layer}, manifest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(host: str, repository: str, tag: str, blobs: dict[str, bytes], manifest: bytes, user: str, password: str) -> str:
    """Pushes an image over the distribution API with basic auth; blobs the
    registry has are skipped. Returns the reference `host/repository:tag`."""
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    base = f"https://{host}/v2/{repository}"

    def call(method: str, url: str, data: bytes | None = None, content_type: str | None = None):
        request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": authorization})
        if content_type:
            request.add_header("Content-Type", content_type)
        return urllib.request.urlopen(request, context=tls_context(), timeout=30)

    for digest, blob in blobs.items():
        try:
            call("HEAD", f"{base}/blobs/{digest}").close()
            continue
        except urllib.error.HTTPError as err:
            if err.code != 404:
                raise
        with call("POST", f"{base}/blobs/uploads/") as response:
            location = urllib.parse.urljoin(base, response.headers["Location"])
        separator = "&" if "?" in location else "?"
        call("PUT", f"{location}{separator}digest={digest}", blob, "application/octet-stream").close()
    call("PUT", f"{base}/manifests/{tag}", manifest, json.loads(manifest)["mediaType"]).close()
    return f"{host}/{repository}:{tag}"


def oci_archive(name: str, blobs: dict[str, bytes], manifest: bytes) -> bytes:
    """An OCI image layout as a tar (what `ctr images import` reads), naming the image `name`."""
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": json.loads(manifest)["mediaType"],
                "digest": sha256_digest(manifest),
                "size": len(manifest),
                "annotations": {"io.containerd.image.name": name},
            }
        ],
    }
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), "index.json": json.dumps(index).encode()}
    for digest, data in [*blobs.items(), (sha256_digest(manifest), manifest)]:
        files[f"blobs/sha256/{digest.split(':')[1]}"] = data
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


# --- the node -----------------------------------------------------------------------
#
# containerd (Debian's, with its CRI plugin) and runc run the pods; the kubelet,
# kube-controller-manager and kube-scheduler come from the same wrapper module as
# the apiserver. Everything they write lives under target/testenv/node/.
#
# Networking: the kubelet, its streaming server and containerd's listen on
# 127.0.0.1. Ordinary pods get an address on a bridge that has none on the host
# (no gateway, no masquerade, no iptables rules): every pod address lives in a
# network namespace the node made. Pods that must reach the world's services on
# 127.0.0.1 (the operator: apiserver, registries, AWS stand-ins) use hostNetwork.
# Images are pulled by containerd on the host, so ordinary pods pull from the
# registries too.


def containerd_socket() -> Path:
    return NODE / "containerd" / "containerd.sock"


def ctr(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        [tool("ctr"), f"--address={containerd_socket()}", "--namespace=k8s.io", *args], capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise SystemExit(f"testenv: ctr {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def containerd_config() -> str:
    """containerd's configuration: every path under the node's folder.

    `restrict_oom_score_adj`: this VM lets no process lower its oom_score_adj, and
    runc fails every sandbox ("can't get final child's PID from pipe") unless
    containers keep containerd's. Registries: hosts files under certs.d trust
    the test CA; credentials come from each pod's imagePullSecrets."""
    root = NODE / "containerd"
    return f"""version = 2
root = "{root / 'root'}"
state = "{root / 'state'}"
disabled_plugins = ["io.containerd.internal.v1.tracing", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{containerd_socket()}"

[ttrpc]
  address = "{containerd_socket()}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{NODE / 'cni' / 'net.d'}"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{os.path.realpath(tool('runc'))}"
        Root = "{root / 'runc'}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{root / 'certs.d'}"
"""


def write_registry_hosts(registries: list[str]) -> None:
    """containerd's hosts files: each registry of the world, over TLS with the test CA."""
    certs_d = NODE / "containerd" / "certs.d"
    if certs_d.exists():
        subprocess.run(["rm", "-rf", str(certs_d)], check=True)
    for host in registries:
        folder = certs_d / host
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hosts.toml").write_text(
            f'server = "https://{host}"\n\n[host."https://{host}"]\n  capabilities = ["pull", "resolve"]\n  ca = "{CERTS / "ca.pem"}"\n'
        )


def write_cni_config() -> None:
    """A bridge network whose addresses exist only inside the pods' namespaces."""
    folder = NODE / "cni" / "net.d"
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "0.4.0",
        "name": "promoter-testenv",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]], "dataDir": str(NODE / "cni" / "ipam")},
            }
        ],
    }
    (folder / "10-promoter-testenv.conflist").write_text(json.dumps(config, indent=2) + "\n")


def other_node() -> str | None:
    """Another test world's node on this machine, if one runs. Two cannot: the
    pod cgroups, the bridge and the kubelet's host paths are machine-wide."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        for name in [b"containerd", b"kubelet"]:
            if b"PROMOTER_TESTENV_COMPONENT=" + name in environ and not cwd.startswith(str(STATE)):
                return f"{name.decode()} pid {proc.name} of the test world in {cwd}"
    return None


def start_containerd(world: World, registries: list[str], sandbox: bytes) -> None:
    other = other_node()
    if other:
        raise SystemExit(f"testenv: a node already runs on this machine ({other}); one machine runs one node: `make env-down` there first")
    if not world.running("containerd"):
        # A node whose runtime is gone: its kubelet is useless, its leftovers stale.
        world.stop("kubelet")
        restore_sysctls(world)
        clean_node()
    folder = NODE / "containerd"
    folder.mkdir(parents=True, exist_ok=True)
    write_registry_hosts(registries)
    write_cni_config()
    config = containerd_config()
    (folder / "config.toml").write_text(config)

    def listening() -> bool:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(containerd_socket()))
        return True

    world.start("containerd", [tool("containerd"), f"--config={folder / 'config.toml'}", "--log-level=warn"], listening, config=config)
    archive = folder / "sandbox-image.tar"
    archive.write_bytes(sandbox)
    if SANDBOX_IMAGE not in ctr("images", "ls", "-q").split():
        ctr("images", "import", str(archive))
        log(f"containerd: imported the sandbox image {SANDBOX_IMAGE}")


def component_kubeconfig(world: World, component: str, url: str) -> Path:
    path = STATE / "kube" / f"{component}.kubeconfig"
    write_kubeconfig(path, url, COMPONENT_USERS[component][0], world.secret(component + "-token"))
    return path


def start_controller_manager(world: World, url: str, name: str = "kube-controller-manager", controllers: str = "*") -> None:
    kubeconfig = component_kubeconfig(world, "kube-controller-manager", url)
    port = world.port(name)
    world.start(
        name,
        [
            tool("kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={CERTS / 'server.pem'}",
            f"--tls-private-key-file={CERTS / 'server.key'}",
            "--leader-elect=false",
            # Each controller acts as its own service account, as on a kubeadm cluster.
            "--use-service-account-credentials=true",
            f"--root-ca-file={CERTS / 'ca.pem'}",
            f"--service-account-private-key-file={CERTS / 'service-account.key'}",
            f"--service-cluster-ip-range={SERVICE_SUBNET}",
            f"--flex-volume-plugin-dir={NODE / 'volume-plugins'}",
            *([f"--controllers={controllers}"] if controllers != "*" else []),
            "--v=0",
        ],
        lambda: http_status(f"https://127.0.0.1:{port}/healthz", context=tls_context()) == 200,
    )


def start_scheduler(world: World, url: str) -> None:
    kubeconfig = component_kubeconfig(world, "kube-scheduler", url)
    port = world.port("kube-scheduler")
    world.start(
        "kube-scheduler",
        [
            tool("kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={CERTS / 'server.pem'}",
            f"--tls-private-key-file={CERTS / 'server.key'}",
            "--leader-elect=false",
            "--v=0",
        ],
        lambda: http_status(f"https://127.0.0.1:{port}/healthz", context=tls_context()) == 200,
    )


def kubelet_config(world: World) -> dict:
    """The kubelet's configuration for this kind of machine.

    cgroup v1 with the cgroupfs driver; no swap. Hard eviction is off: cadvisor
    cannot read the root device's filesystem stats here. Image garbage collection
    is off for the same reason (and so the sandbox image stays). The kubelet's API
    listens on 127.0.0.1 with the world's serving certificate, authenticates the
    apiserver by its client certificate and authorizes through the apiserver."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": world.port("kubelet"),
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": world.port("kubelet-healthz"),
        "tlsCertFile": str(CERTS / "server.pem"),
        "tlsPrivateKeyFile": str(CERTS / "server.key"),
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True}, "x509": {"clientCAFile": str(CERTS / "ca.pem")}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{containerd_socket()}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "evictionHard": {},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "podLogsDir": str(NODE / "pod-logs"),
        "volumePluginDir": str(NODE / "volume-plugins"),
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
    }


def start_kubelet(world: World, url: str) -> None:
    """The kubelet, registered as node "localhost".

    It refuses a loopback node IP; named "localhost", the node's Hostname address
    is "localhost", which the apiserver dials first (--kubelet-preferred-address-types),
    so logs, exec and port-forward reach the kubelet on 127.0.0.1. The InternalIP
    it also reports (the machine's own interface) is never dialled."""
    kubeconfig = component_kubeconfig(world, "kubelet", url)
    folder = NODE / "kubelet"
    folder.mkdir(parents=True, exist_ok=True)
    config = json.dumps(kubelet_config(world), indent=2) + "\n"
    (NODE / "kubelet.json").write_text(config)
    healthz = world.port("kubelet-healthz")
    if not world.running("kubelet") and "sysctls" not in world.data:
        world.data["sysctls"] = {name: Path("/proc/sys", name).read_text().strip() for name in KUBELET_SYSCTLS}
        world.save()
    world.start(
        "kubelet",
        [
            tool("kubelet"),
            f"--config={NODE / 'kubelet.json'}",
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={NODE_NAME}",
            f"--root-dir={folder}",
            "--v=0",
        ],
        lambda: http_status(f"http://127.0.0.1:{healthz}/healthz") == 200,
        config=config,
    )


def wait_node_ready(url: str, token: str) -> None:
    def ready() -> bool:
        request = urllib.request.Request(f"{url}/api/v1/nodes/{NODE_NAME}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, context=tls_context(), timeout=5) as response:
            node = json.load(response)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))

    wait_until(f"node {NODE_NAME} Ready", ready, LOGS / "kubelet.log", timeout=120)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([tool("kubectl"), f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"testenv: kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def apply_cluster_objects(kubeconfig: str) -> None:
    """What a cluster's installer creates: the apiserver's right to the kubelet's API
    (logs, exec, port-forward) and the host-network RuntimeClass."""
    objects = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "testenv:kube-apiserver-kubelet-client"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_CLIENT_USER}],
        },
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": HOST_NETWORK_RUNTIME_CLASS}, "handler": "runc"},
    ]
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=testenv",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )


def remove_containers() -> None:
    """Kills and removes every pod container (sandboxes included) through containerd."""
    forget_cni_results(ctr("containers", "ls", "-q").split())
    for task in ctr("tasks", "ls", "-q").split():
        ctr("tasks", "rm", "--force", task, check=False)
    containers = ctr("containers", "ls", "-q").split()
    if containers:
        ctr("containers", "rm", *containers, check=False)
    left = ctr("tasks", "ls", "-q").split()
    if left:
        raise SystemExit(f"testenv: containerd still runs tasks: {', '.join(left)}")


def forget_cni_results(sandboxes: list[str]) -> None:
    """Drops the CNI library's cached results (in /var/lib/cni, whatever the
    configuration says) of sandboxes that go without a CNI DEL."""
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for cached in results.iterdir():
            if any(f"-{sandbox}-" in cached.name for sandbox in sandboxes):
                cached.unlink(missing_ok=True)


def restore_sysctls(world: World, forget: bool = True) -> None:
    """Puts back the kernel settings recorded before the kubelet first started."""
    recorded = world.data.pop("sysctls", {}) if forget else world.data.get("sysctls", {})
    for name, value in recorded.items():
        if Path("/proc/sys", name).read_text().strip() != value:
            Path("/proc/sys", name).write_text(value + "\n")
    world.save()


def kubelet_iptables_rules(command: str) -> list[tuple[str, list[str]]]:
    """The kubelet's iptables chains (KUBE-FIREWALL, its canaries) and the rules
    that jump to them, as (table, arguments that delete them), rules first."""
    rules, chains = [], []
    for table in ["filter", "nat", "mangle"]:
        listed = subprocess.run([command, "-w", "-t", table, "-S"], capture_output=True, text=True)
        for line in listed.stdout.splitlines():
            words = line.split()
            if words[:1] == ["-N"] and words[1].startswith("KUBE-"):
                chains.append((table, ["-X", words[1]]))
            elif words[:1] == ["-A"] and not words[1].startswith("KUBE-") and "-j" in words and words[words.index("-j") + 1].startswith("KUBE-"):
                rules.append((table, ["-D", *words[1:]]))
    flushes = [(table, ["-F", args[1]]) for table, args in chains]
    return rules + flushes + chains


def remove_kubelet_iptables() -> None:
    for command in ["iptables", "ip6tables"]:
        if subprocess.run(["sh", "-c", f"command -v {command}"], capture_output=True).returncode != 0:
            continue
        for table, args in kubelet_iptables_rules(command):
            subprocess.run([command, "-w", "-t", table, *args], capture_output=True)


def node_mounts() -> list[str]:
    """Mount points under the node's folder, most recent first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == str(NODE) or point.startswith(str(NODE) + "/"):
            points.append(point)
    return list(reversed(points))


def node_cgroups() -> list[Path]:
    """The kubelet's pod cgroups, deepest first."""
    found: list[Path] = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if top.is_dir():
            found += sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            found.append(top)
    return found


def pod_processes() -> list[int]:
    """Processes in the kubelet's pod cgroups: containers."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if "/kubepods" in (proc / "cgroup").read_text():
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def node_shims() -> list[int]:
    """containerd's shims for this node: each outlives containerd by design."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"containerd-shim-runc-v2") and str(containerd_socket()).encode() in argv:
                found.append(int(proc.name))
    return found


def shim_ids() -> list[str]:
    """The container ids of the running shims (their `-id` argument)."""
    ids = []
    for pid in node_shims():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "-id" in argv:
            ids.append(argv[argv.index("-id") + 1])
    return ids


def forget_shim_sockets(ids: list[str]) -> None:
    """Removes the sockets of shims that were killed: containerd 1.6 keeps them in
    /run/containerd/s/, named by the digest of its address, namespace and id."""
    for task in ids:
        name = hashlib.sha256(os.path.join(str(containerd_socket()), "k8s.io", task).encode()).hexdigest()
        Path("/run/containerd/s", name).unlink(missing_ok=True)


def kill_orphans() -> None:
    """Kills what outlived a containerd that died: pod processes and shims."""
    forget = shim_ids()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        orphans = pod_processes() + node_shims()
        if not orphans:
            forget_shim_sockets(forget)
            return
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise SystemExit(f"testenv: pod processes or shims survive SIGKILL: {pod_processes() + node_shims()}")


def clean_node() -> None:
    """Removes what pods leave once the node's processes are gone: pod processes
    and shims that outlived containerd, mounts (pod volumes, root filesystems,
    network namespaces), the bridge, pod cgroups, IP leases, the CNI result
    cache, log links, and the kubelet's and containerd's runtime state (images
    stay)."""
    kill_orphans()
    for point in node_mounts():
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    left = node_mounts()
    if left:
        raise SystemExit(f"testenv: mounts left behind: {', '.join(left)}")
    tasks = NODE / "containerd" / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
    if tasks.is_dir():
        forget_cni_results([task.name for task in tasks.iterdir()])
        forget_shim_sockets([task.name for task in tasks.iterdir()])
    for folder in [NODE / "kubelet", NODE / "pod-logs", NODE / "cni" / "ipam", NODE / "containerd" / "state", NODE / "containerd" / "runc"]:
        if folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=True)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        subprocess.run(["ip", "link", "delete", BRIDGE], check=True)
    for cgroup in node_cgroups():
        try:
            cgroup.rmdir()
        except OSError:
            pass
    for cached in Path("/var/lib/cni/results").glob("promoter-testenv-*"):
        cached.unlink(missing_ok=True)
    logs = Path("/var/log/containers")
    if logs.is_dir():
        for link in logs.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(NODE)):
                link.unlink()
    Path("/var/lib/kubelet/device-plugins/kubelet.sock").unlink(missing_ok=True)
    for folder in HOST_FOLDERS:
        try:
            folder.rmdir()
        except OSError:
            pass
    remove_kubelet_iptables()


def node_leftovers() -> list[str]:
    """What a stopped node must not leave: pod processes, mounts, netns, bridge, cgroups."""
    left = [f"pod process {pid}" for pid in pod_processes()]
    left += [f"containerd shim {pid}" for pid in node_shims()]
    left += [f"mount {point}" for point in node_mounts()]
    netns = NODE / "containerd" / "state" / "netns"
    if netns.exists():
        left += [f"network namespace {ns}" for ns in netns.iterdir()]
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        left.append(f"bridge {BRIDGE}")
    left += [f"cgroup {cgroup}" for cgroup in node_cgroups()]
    for command in ["iptables", "ip6tables"]:
        if subprocess.run(["sh", "-c", f"command -v {command}"], capture_output=True).returncode == 0:
            left += [f"{command} -t {table} {' '.join(args)}" for table, args in kubelet_iptables_rules(command) if args[0] == "-X"]
    return left


def stop_node(world: World) -> None:
    """Stops the node: controllers first (nothing recreates pods), then the kubelet,
    every container through containerd, containerd, and what pods leave behind."""
    for name in ["kube-controller-manager", "kube-scheduler", "kubelet"]:
        world.stop(name)
    if other_node():
        # The machine's node is another world's: nothing machine-wide is ours.
        return
    restore_sysctls(world)
    if world.running("containerd"):
        remove_containers()
    world.stop("containerd")
    if NODE.exists():
        clean_node()


# --- up / down --------------------------------------------------------------------


# --- Argo CD (PROMOTER_TESTENV_ARGOCD=1, `make env-up-argocd`) -----------------------
#
# Argo CD as its developers run it outside a cluster: the application controller, the
# repo server and the API server as local processes of the one `argocd` binary (built
# by `make tools`), with ARGOCD_FAKE_IN_CLUSTER=true so that the in-cluster destination
# (https://kubernetes.default.svc) is the world's kube-apiserver, and Debian's Redis as
# their cache. The API server runs with --disable-auth (and argocd-rbac-cm's default
# role admin): it is reached only on 127.0.0.1, by the tests and `argocd app ... --server`.
# Applications read Git repositories as file:// URLs (Argo CD's own end-to-end tests
# do the same), so the tests make bare repositories of their own; nothing is served.
# The resource customizations are not installed here: the tests install them the way
# docs/argocd.md tells users to, into the argocd-cm this creates.

ARGOCD_NAMESPACE = "argocd"
ARGOCD_COMPONENTS = ["argocd-garbage-collector", "argocd-redis", "argocd-repo-server", "argocd-application-controller", "argocd-server"]


def argocd_wanted(world: World) -> bool:
    """Argo CD when asked for, or when this world already runs it: `up` keeps what runs
    (`make demo ARGOCD=1` brings the world up with Argo CD, then `make image` runs `up`
    again without the variable)."""
    return os.environ.get("PROMOTER_TESTENV_ARGOCD", "0") == "1" or world.running("argocd-server")


def private_argocd_wanted() -> bool:
    """A private control plane gets its own Argo CD only when asked for by name: CI exports
    PROMOTER_TESTENV_ARGOCD=1 for the shared world, and the soak's and the benchmark's
    private control planes must not carry an application controller watching them."""
    return os.environ.get("PROMOTER_TESTENV_PRIVATE_ARGOCD", "0") == "1"


def argocd_crds() -> Path:
    for folder in [STATE / "argocd-crds", BIN.parent / "argocd-crds"]:
        if (folder / "application-crd.yaml").exists():
            return folder
    raise SystemExit("testenv: Argo CD's CRDs are missing (target/testenv/argocd-crds); run `make tools` first")


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def argocd_objects(world: World) -> list[dict]:
    """What Argo CD's install manifests create besides its workloads, as far as the
    three components need it: its namespace, argocd-cm, argocd-rbac-cm, argocd-secret,
    and the default AppProject (which argocd-server would otherwise create)."""
    part_of = {"app.kubernetes.io/part-of": "argocd"}

    def named(kind: str, name: str, api: str = "v1") -> dict:
        labels = part_of | {"app.kubernetes.io/name": name}
        return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ARGOCD_NAMESPACE, "labels": labels}}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGOCD_NAMESPACE}},
        named("ConfigMap", "argocd-cm") | {"data": {"admin.enabled": "false"}},
        named("ConfigMap", "argocd-rbac-cm") | {"data": {"policy.default": "role:admin"}},
        named("Secret", "argocd-secret") | {"type": "Opaque", "stringData": {"server.secretkey": world.secret("argocd-server-key")}},
        named("AppProject", "default", "argoproj.io/v1alpha1")
        | {
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            }
        },
    ]


def start_argocd(world: World, kubeconfig: str) -> dict[str, str]:
    """Starts (or reuses) Redis and Argo CD's three components against the apiserver
    of `kubeconfig`; returns the env lines the tests read."""
    home = STATE / "argocd"
    for folder in ["tls", "ssh", "gpg", "tmp", "static"]:
        (home / folder).mkdir(parents=True, exist_ok=True)
    crds = argocd_crds()
    for crd in ["application-crd.yaml", "appproject-crd.yaml"]:
        kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "--field-manager=testenv", "-f", str(crds / crd))

    def established() -> bool:
        # Read as JSON: a jsonpath filter fails outright on a CRD the apiserver
        # has not given conditions yet (the moment after the apply).
        out = kubectl(kubeconfig, "get", "crd", "applications.argoproj.io", "appprojects.argoproj.io", "-o", "json")
        items = json.loads(out).get("items", [])
        return len(items) == 2 and all(
            any(c.get("type") == "Established" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions") or [])
            for item in items
        )

    wait_until("Argo CD's CRDs Established", established)
    kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=testenv",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": argocd_objects(world)}),
    )

    # Argo CD prunes with foreground deletion, which waits for the garbage collector to
    # remove the foregroundDeletion finalizer. The node's kube-controller-manager runs
    # it; a world without the node (a private control plane, PROMOTER_TESTENV_NODE=0)
    # gets a kube-controller-manager that runs only the garbage collector.
    if not world.running("kube-controller-manager"):
        api_url = f"https://127.0.0.1:{world.port('kube-apiserver')}"
        start_controller_manager(world, api_url, "argocd-garbage-collector", "garbagecollector")

    redis = world.port("argocd-redis")
    world.start(
        "argocd-redis",
        # No process title: redis would overwrite the environment that marks it as ours.
        [tool("redis-server"), "--port", str(redis), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--set-proc-title", "no", "--dir", str(home)],
        lambda: tcp_open(redis),
    )
    # The environment of Argo CD's containers, pointed at this world's folder: no GnuPG
    # keyring (Applications here are not signed), TLS and SSH data in folders of its
    # own, and the in-cluster destination faked with this kubeconfig.
    env = {
        "KUBECONFIG": kubeconfig,
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "ARGOCD_GPG_ENABLED": "false",
        "ARGOCD_GNUPGHOME": str(home / "gpg"),
        "ARGOCD_TLS_DATA_PATH": str(home / "tls"),
        "ARGOCD_SSH_DATA_PATH": str(home / "ssh"),
        "TMPDIR": str(home / "tmp"),
        # git-verify-wrapper.sh, from Argo CD's image (install-tools.sh).
        "PATH": f"{STATE / 'bin'}:{BIN}:{os.environ.get('PATH', '')}",
    }
    common = ["--redis", f"127.0.0.1:{redis}", "--loglevel", "info"]
    local = ["--address", "127.0.0.1", "--metrics-address", "127.0.0.1"]
    repo_server, repo_metrics = world.port("argocd-repo-server"), world.port("argocd-repo-server-metrics")
    world.start(
        "argocd-repo-server",
        [tool("argocd-repo-server"), *local, "--port", str(repo_server), "--metrics-port", str(repo_metrics), "--disable-tls", "--client-ca-path", "", *common],
        lambda: tcp_open(repo_server),
        env=env,
    )
    repo = ["--repo-server", f"127.0.0.1:{repo_server}", "--repo-server-plaintext"]
    controller_metrics = world.port("argocd-application-controller-metrics")
    world.start(
        "argocd-application-controller",
        [
            tool("argocd-application-controller"),
            "--namespace",
            ARGOCD_NAMESPACE,
            "--metrics-port",
            str(controller_metrics),
            # A short reconciliation period (timeout.reconciliation): a new commit
            # shows within seconds without a webhook.
            "--app-resync",
            "10",
            *repo,
            *common,
        ],
        lambda: http_status(f"http://127.0.0.1:{controller_metrics}/metrics") == 200,
        env=env,
    )
    server, server_metrics = world.port("argocd-server"), world.port("argocd-server-metrics")
    world.start(
        "argocd-server",
        [
            tool("argocd-server"),
            "--namespace",
            ARGOCD_NAMESPACE,
            *local,
            "--insecure",
            "--disable-auth",
            "--port",
            str(server),
            "--metrics-port",
            str(server_metrics),
            "--staticassets",
            str(home / "static"),
            *repo,
            *common,
        ],
        lambda: http_status(f"http://127.0.0.1:{server}/healthz") == 200,
        env=env,
    )
    return {
        "PROMOTER_TEST_ARGOCD_NAMESPACE": ARGOCD_NAMESPACE,
        "PROMOTER_TEST_ARGOCD_SERVER": f"127.0.0.1:{server}",
        "PROMOTER_TEST_ARGOCD_CLI": tool("argocd"),
    }


def up() -> None:
    started = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    make_certificates()
    world = World()
    etcd_url = start_etcd(world)
    kubeconfig = start_apiserver(world, etcd_url)
    moto_url = start_moto(world)

    ecr_pass = ecr_password(moto_url)
    ecr_htpasswd = STATE / "registries" / "htpasswd-ecr"
    ecr_htpasswd.parent.mkdir(parents=True, exist_ok=True)
    if not world.running("registry-ecr"):
        htpasswd(ecr_htpasswd, "AWS", ecr_pass)
    ecr = start_registry(world, "registry-ecr", {"htpasswd": {"realm": "internal-ecr", "path": str(ecr_htpasswd)}})

    quay_password = world.secret("quay-password")
    quay_htpasswd = STATE / "registries" / "htpasswd-quay"
    if not world.running("registry-quay"):
        htpasswd(quay_htpasswd, QUAY_USER, quay_password)
    quay = start_registry(world, "registry-quay", {"htpasswd": {"realm": "quay", "path": str(quay_htpasswd)}})

    realm_port = world.port("ecr-public-token")
    realm = f"https://127.0.0.1:{realm_port}/token"
    public = start_registry(
        world,
        "registry-public",
        {
            "token": {
                "realm": realm,
                "service": PUBLIC_SERVICE,
                "issuer": PUBLIC_ISSUER,
                "rootcertbundle": str(CERTS / "ca.pem"),
                "signingalgorithms": ["ES256"],
            }
        },
    )
    public_api, realm = start_ecr_public(world, public)
    world.save()

    api_url = f"https://127.0.0.1:{world.port('kube-apiserver')}"
    apply_cluster_objects(kubeconfig)
    busybox_version, blobs, manifest = busybox_image()
    busybox = push_image(quay, "testenv/busybox", busybox_version, blobs, manifest, QUAY_USER, quay_password)
    with_node = os.environ.get("PROMOTER_TESTENV_NODE", "1") != "0"
    if with_node:
        start_containerd(world, [ecr, quay, public], oci_archive(SANDBOX_IMAGE, blobs, manifest))
        start_controller_manager(world, api_url)
        start_scheduler(world, api_url)
        start_kubelet(world, api_url)
        wait_node_ready(api_url, world.secret("admin-token"))
        restore_sysctls(world, forget=False)

    docker = STATE / "docker"
    docker.mkdir(exist_ok=True)
    public_token = ecr_public_token(public_api)

    def basic(user: str, password: str) -> dict:
        return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}

    (docker / "config.json").write_text(
        json.dumps({"auths": {ecr: basic("AWS", ecr_pass), quay: basic(QUAY_USER, quay_password), public: basic("AWS", public_token)}}, indent=2)
        + "\n"
    )
    (docker / "config.json").chmod(0o600)

    config = STATE / "promoter.yaml"
    config.write_text(promoter_config(ecr, quay, public, docker / "config.json", moto_url, public_api))

    env = {
        "KUBECONFIG": kubeconfig,
        "PROMOTER_TEST_CONFIG": str(config),
        "PROMOTER_TEST_BIN": str(BIN),
        "PROMOTER_TEST_CA": str(CERTS / "ca.pem"),
        "PROMOTER_TEST_ECR_REGISTRY": ecr,
        "PROMOTER_TEST_ECR_ACCOUNT": ACCOUNT,
        "PROMOTER_TEST_QUAY_REGISTRY": quay,
        "PROMOTER_TEST_QUAY_USER": QUAY_USER,
        "PROMOTER_TEST_QUAY_PASSWORD": quay_password,
        "PROMOTER_TEST_PUBLIC_REGISTRY": public,
        "PROMOTER_TEST_PUBLIC_ALIAS": PUBLIC_ALIAS,
        "PROMOTER_TEST_PUBLIC_FOREIGN_ALIAS": PUBLIC_FOREIGN_ALIAS,
        "PROMOTER_TEST_PUBLIC_FOREIGN_ACCESS_KEY": PUBLIC_FOREIGN_ACCESS_KEY,
        "PROMOTER_TEST_PUBLIC_TOKEN_REALM": realm,
        "PROMOTER_TEST_PUBLIC_SERVICE": PUBLIC_SERVICE,
        "PROMOTER_TEST_DOCKER_CONFIG": str(docker),
        "AWS_ENDPOINT_URL_ECR": moto_url,
        "AWS_ENDPOINT_URL_ECR_PUBLIC": public_api,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PROMOTER_TEST_APISERVER_HOST": "127.0.0.1",
        "PROMOTER_TEST_APISERVER_PORT": str(world.port("kube-apiserver")),
        "PROMOTER_TEST_BUSYBOX_IMAGE": busybox,
    }
    if argocd_wanted(world):
        env |= start_argocd(world, kubeconfig)
    if with_node:
        env |= {
            "PROMOTER_TEST_NODE_NAME": NODE_NAME,
            "PROMOTER_TEST_CONTAINERD_ADDRESS": str(containerd_socket()),
            "PROMOTER_TEST_HOST_NETWORK_RUNTIME_CLASS": HOST_NETWORK_RUNTIME_CLASS,
            "PROMOTER_TEST_POD_SUBNET": POD_SUBNET,
        }
    lines = ["# The image-promoter test world; written by `make env-up`. Source it: . target/testenv/env"]
    lines += [f"export {key}={value}" for key, value in env.items()]
    lines.append(f'export PATH="{BIN}:$PATH"')
    (STATE / "env").write_text("\n".join(lines) + "\n")
    log(f"ready in {time.monotonic() - started:.1f}s; source {STATE / 'env'}")


def promoter_config(ecr: str, quay: str, public: str, docker_config: Path, moto_url: str, public_api: str) -> str:
    """image-promoter's configuration file for the test world (docs/config.md).

    Internal ECR and ECR Public authenticate the way production does, with
    GetAuthorizationToken from the stand-ins; Quay with its robot account."""
    ca = CERTS / "ca.pem"
    return f"""# image-promoter configuration for the local test world; written by `make env-up`.
registries:
  - host: "{ecr}"
    kind: ecr
    caFile: {ca}
    auth:
      ecr:
        registryId: "{ACCOUNT}"
        region: {REGION}
        endpointUrl: {moto_url}
  - host: "{quay}"
    kind: generic
    caFile: {ca}
    auth:
      dockerConfig:
        path: {docker_config}
  - host: "{public}"
    kind: ecrPublic
    caFile: {ca}
    auth:
      ecrPublic:
        endpointUrl: {public_api}
"""


def down() -> None:
    world = World()
    stop_node(world)
    # Reverse start order: clients of etcd before etcd.
    for name in reversed(list(world.data["pids"])):
        world.stop(name)
    world.save()
    left = [f"process {p.name}" for p in Path("/proc").iterdir() if p.name.isdigit() and _is_ours(p)]
    if not other_node():
        left += node_leftovers()
    if left:
        raise SystemExit(f"testenv: left behind: {', '.join(left)}")
    (STATE / "env").unlink(missing_ok=True)


def _is_ours(proc: Path) -> bool:
    try:
        environ = (proc / "environ").read_bytes()
        cwd = os.readlink(proc / "cwd")
    except OSError:
        return False
    return b"PROMOTER_TESTENV_COMPONENT=" in environ and cwd.startswith(str(STATE))


def status() -> None:
    world = World()
    for name, pid in world.data["pids"].items():
        print(f"{name:18} pid {pid:>7} {'running' if process_matches(pid, name) else 'stopped'}")


# --- a private control plane --------------------------------------------------------
#
# The soak (tests/soak) restarts the apiserver and takes ECR Public down; the operator
# benchmark counts the operator's requests in an audit log. Doing that to the shared
# world would disturb every other test running on it, so they get private copies: an
# etcd, a kube-apiserver (with an audit log of every ServiceAccount's requests), a
# registry for ECR Public and its stand-in (whose state survives a restart), in a
# folder of their own with their own ports. The tools, the certificates, moto, the
# internal ECR and the Quay registry stay the shared world's.

PRIVATE_COMPONENTS = ["etcd", "kube-apiserver", "registry-public", "ecr-public"]

AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            values[key] = value
    return values


def use_private_state(folder: Path) -> dict[str, str]:
    """Points the state (ports, PIDs, secrets, logs, data) at `folder`; the tools
    and certificates stay the shared world's. Returns the shared world's env."""
    global STATE, LOGS, STATE_FILE
    shared_env = STATE / "env"
    if not shared_env.exists():
        raise SystemExit(f"testenv: the shared world is not up ({shared_env} is missing); run `make env-up`")
    env = read_env(shared_env)
    STATE = folder.resolve()
    LOGS = STATE / "logs"
    STATE_FILE = STATE / "state.json"
    STATE.mkdir(parents=True, exist_ok=True)
    return env


def private_up(folder: Path) -> None:
    """Starts (or reuses; restarts what was stopped) the private control plane in
    `folder` and writes `folder/env`: the shared world's env with the private
    apiserver, ECR Public and configuration in place of the shared ones."""
    shared = use_private_state(folder)
    world = World()
    etcd_url = start_etcd(world)
    kube = STATE / "kube"
    kube.mkdir(parents=True, exist_ok=True)
    (kube / "audit-policy.yaml").write_text(AUDIT_POLICY)
    audit_log = kube / "audit.log"
    kubeconfig = start_apiserver(
        world,
        etcd_url,
        [f"--audit-policy-file={kube / 'audit-policy.yaml'}", f"--audit-log-path={audit_log}", "--audit-log-format=json", "--audit-log-maxbackup=0"],
    )
    realm = f"https://127.0.0.1:{world.port('ecr-public-token')}/token"
    auth = {"token": {"realm": realm, "service": PUBLIC_SERVICE, "issuer": PUBLIC_ISSUER, "rootcertbundle": str(CERTS / "ca.pem"), "signingalgorithms": ["ES256"]}}
    public = start_registry(world, "registry-public", auth)
    public_api, realm = start_ecr_public(world, public, STATE / "ecr-public-state.json")
    world.save()
    config = STATE / "promoter.yaml"
    config.write_text(
        promoter_config(
            shared["PROMOTER_TEST_ECR_REGISTRY"],
            shared["PROMOTER_TEST_QUAY_REGISTRY"],
            public,
            Path(shared["PROMOTER_TEST_DOCKER_CONFIG"]) / "config.json",
            shared["AWS_ENDPOINT_URL_ECR"],
            public_api,
        )
    )
    env = shared | {
        "KUBECONFIG": kubeconfig,
        "PROMOTER_TEST_CONFIG": str(config),
        "PROMOTER_TEST_PUBLIC_REGISTRY": public,
        "PROMOTER_TEST_PUBLIC_TOKEN_REALM": realm,
        "AWS_ENDPOINT_URL_ECR_PUBLIC": public_api,
        "PROMOTER_TEST_APISERVER_PORT": str(world.port("kube-apiserver")),
        "PROMOTER_TEST_AUDIT_LOG": str(audit_log),
        "PROMOTER_TEST_PRIVATE_WORLD": str(STATE),
    }
    if private_argocd_wanted():
        env |= start_argocd(world, kubeconfig)
    lines = ["# A private control plane of the image-promoter test world; written by `testenv.py private`."]
    lines += [f"export {key}={value}" for key, value in env.items() if key != "PATH"]
    (STATE / "env").write_text("\n".join(lines) + "\n")
    log(f"private control plane ready; source {STATE / 'env'}")


def private_stop(folder: Path, name: str) -> None:
    if name not in PRIVATE_COMPONENTS:
        raise SystemExit(f"testenv: {name!r} is not one of {', '.join(PRIVATE_COMPONENTS)}")
    use_private_state(folder)
    world = World()
    # A restart, as a crashed or rescheduled component has it: a short grace,
    # then SIGKILL. kube-apiserver drains its watches for well over ten
    # seconds after SIGTERM, which would make every restart an outage longer
    # than the operator's renew deadline.
    world.stop(name, grace=2)
    world.save()


def private_down(folder: Path) -> None:
    use_private_state(folder)
    world = World()
    for name in reversed(PRIVATE_COMPONENTS + ARGOCD_COMPONENTS):
        world.stop(name)
    world.save()
    for data in [STATE / "etcd", STATE / "registries", STATE / "argocd"]:
        if data.exists():
            subprocess.run(["rm", "-rf", str(data)], check=True)


def private(args: list[str]) -> None:
    usage = f"usage: {sys.argv[0]} private FOLDER up|down|stop COMPONENT ({', '.join(PRIVATE_COMPONENTS)})"
    if len(args) < 2:
        raise SystemExit(usage)
    folder, command = Path(args[0]), args[1:]
    if command == ["up"]:
        private_up(folder)
    elif command == ["down"]:
        private_down(folder)
    elif len(command) == 2 and command[0] == "stop":
        private_stop(folder, command[1])
    else:
        raise SystemExit(usage)


if __name__ == "__main__":
    if sys.argv[1:2] == ["private"]:
        private(sys.argv[2:])
        raise SystemExit(0)
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(commands)}|private FOLDER …")
    commands[sys.argv[1]]()
