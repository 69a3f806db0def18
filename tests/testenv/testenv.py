"""Starts, reuses and stops the local test world of image-promoter.

Every component is a plain process on 127.0.0.1, started from the state folder
`target/testenv/` and stopped by the PID recorded there:

* etcd + kube-apiserver (RBAC, a static admin token, service-account signing keys);
* moto (the ECR API) and the ECR Public stand-in with its registry token issuer;
* three CNCF distribution registries over TLS (a test CA and a leaf certificate):
  "internal ECR" (basic auth: user AWS, password = the token moto issues),
  "Quay" (an htpasswd robot account) and "ECR Public" (bearer-token challenge).

`up` is idempotent: what already runs and answers is reused. It writes
`target/testenv/env` (`export KEY=VALUE` lines for tests and shells) and a docker
`config.json` with every registry's credentials. `down` stops everything and
checks that nothing is left behind.

The binaries come from `tests/testenv/install-tools.sh` (`make tools`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
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
PUBLIC_SERVICE = "ecr-public-test"
PUBLIC_ISSUER = "ecr-public-standin"
QUAY_USER = "promoter+robot"
ADMIN_USER = "promoter-admin"
START_TIMEOUT = 90.0


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
    """A CA, a serving leaf for 127.0.0.1/localhost, a token-signing leaf, SA keys."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    if (CERTS / "done").exists():
        return
    CERTS.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    later = now + dt.timedelta(days=3650)

    def write_key(name: str, key: ec.EllipticCurvePrivateKey) -> None:
        path = CERTS / name
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        path.chmod(0o600)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "image-promoter test world"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("image-promoter test CA"))
        .issuer_name(name("image-promoter test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_key("ca.key", ca_key)
    (CERTS / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn: str, usage: x509.ExtendedKeyUsage, sans: list[x509.GeneralName] | None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(usage, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    key, cert = leaf(
        "127.0.0.1",
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    write_key("server.key", key)
    (CERTS / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    key, cert = leaf("ecr-public token issuer", x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), None)
    write_key("token-signer.key", key)
    (CERTS / "token-signer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    sa_key = ec.generate_private_key(ec.SECP256R1())
    write_key("service-account.key", sa_key)
    (CERTS / "service-account.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (CERTS / "done").write_text("ok\n")


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

    def stop(self, name: str) -> None:
        pid = self.data["pids"].pop(name, None)
        if pid is None or not process_matches(pid, name):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 15
        while process_matches(pid, name) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_matches(pid, name):
            os.killpg(pid, signal.SIGKILL)
        log(f"{name}: stopped pid {pid}")

    def start(self, name: str, argv: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None) -> None:
        # The resolved binary is part of the command: a rebuilt tool restarts its process.
        command = [os.path.realpath(argv[0])] + argv[1:]
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
    path = BIN / name
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


def start_apiserver(world: World, etcd_url: str) -> str:
    port = world.port("kube-apiserver")
    token = world.secret("admin-token")
    kube = STATE / "kube"
    kube.mkdir(parents=True, exist_ok=True)
    tokens = kube / "tokens.csv"
    tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    tokens.chmod(0o600)
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
            "--authorization-mode=RBAC",
            f"--service-account-key-file={CERTS / 'service-account.pub'}",
            f"--service-account-signing-key-file={CERTS / 'service-account.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--v=0",
        ],
        lambda: http_status(f"{url}/readyz", token, tls_context()) == 200,
    )
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testenv", "cluster": {"server": url, "certificate-authority": str(CERTS / "ca.pem")}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": ADMIN_USER, "namespace": "default"}}],
        "current-context": "testenv",
    }
    path = kube / "kubeconfig"
    path.write_text(json.dumps(kubeconfig, indent=2) + "\n")
    path.chmod(0o600)
    return str(path)


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


def start_ecr_public(world: World, registry: str) -> tuple[str, str]:
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
            f"--service={PUBLIC_SERVICE}",
            f"--issuer={PUBLIC_ISSUER}",
            f"--signing-key={CERTS / 'token-signer.key'}",
            f"--signing-cert={CERTS / 'token-signer.pem'}",
            f"--tls-cert={CERTS / 'server.pem'}",
            f"--tls-key={CERTS / 'server.key'}",
            f"--ca={CERTS / 'ca.pem'}",
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


# --- up / down --------------------------------------------------------------------


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
        "PROMOTER_TEST_PUBLIC_TOKEN_REALM": realm,
        "PROMOTER_TEST_PUBLIC_SERVICE": PUBLIC_SERVICE,
        "PROMOTER_TEST_DOCKER_CONFIG": str(docker),
        "AWS_ENDPOINT_URL_ECR": moto_url,
        "AWS_ENDPOINT_URL_ECR_PUBLIC": public_api,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
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
    # Reverse start order: clients of etcd before etcd.
    for name in reversed(list(world.data["pids"])):
        world.stop(name)
    world.save()
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_ours(p)]
    if left:
        raise SystemExit(f"testenv: processes left behind: {', '.join(p.name for p in left)}")
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


if __name__ == "__main__":
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(commands)}")
    commands[sys.argv[1]]()
