"""A minimal stand-in for the Amazon ECR Public API and its registry's token issuer.

Why this exists: no maintained stand-in for ECR Public is available (moto has no
`ecr-public` backend), and the test world must not reach AWS. This is a hand-written
fake, kept as small as the product allows, and used only by the test world.

What it covers, on two listeners of one process:

* The ECR Public JSON API (awsJson1.1, `X-Amz-Target: SpencerFrontendService.<Action>`),
  plain HTTP, for `AWS_ENDPOINT_URL_ECR_PUBLIC`. Actions: GetAuthorizationToken,
  DescribeRegistries (the caller's own alias), CreateRepository, DescribeRepositories,
  PutRepositoryCatalogData, GetRepositoryCatalogData, DescribeImages,
  DescribeImageTags (the RegistryMirror's target listing). Request signatures are not
  checked, but the access key id of the SigV4 `Authorization` header picks the calling
  account: `--foreign KEY=ACCOUNT:ALIAS` declares a second account with its own alias
  (another organisation's registry on the same host), every other key is the main
  account (`--account`, `--alias`). Every action works on the caller's own registry
  only, as ECR Public's does. DescribeImages and
  DescribeImageTags read the real registry (tags, manifests) with a token they mint
  themselves; those reads go straight to the registry, not through any proxy a test
  puts in front of it.
* The registry's token realm (`GET /token`, HTTPS), the Docker token protocol that
  CNCF distribution's `token` auth verifies: the JWTs are ES256, carry an `x5c` chain
  whose root is the test CA, and are really checked by the registry.
  - Anonymous requests get `pull` only (ECR Public allows anonymous pulls).
  - `Basic AWS:<token>` where `<token>` came from GetAuthorizationToken (as ECR Public
    hands it out) gets `pull` and, on repositories its account created through
    CreateRepository under its own alias, `push` (ECR Public refuses pushes to a
    repository that does not exist, and to another account's).
  - Wrong credentials get 401, as the real realm answers.

Token lifetimes are flags, so tests can make tokens expire quickly. With
`--state-file`, every account's repositories and catalog data and the authorization
tokens are kept in a JSON file and read back at start: a stand-in stopped and started
again (the soak's outage of ECR Public) comes back with what it knew, as the real
service does after an outage. A test may run a
private instance of the API in front of the world's registry (tests/promote/standin.rs):
with `--upstream` the main account's actions (but DescribeRegistries) are the world
stand-in's, whose tokens and repositories the world's token realm knows; the second
account is the private instance's own.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import http.server
import json
import os
import re
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

REPOSITORY_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ApiError(Exception):
    """An error in the shape the AWS JSON protocol returns."""

    def __init__(self, kind: str, message: str, status: int = 400):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


class TokenIssuer:
    """Mints registry JWTs that CNCF distribution verifies against the test CA."""

    def __init__(self, key_path: str, cert_path: str, issuer: str, service: str, ttl: int):
        with open(key_path, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.issuer = issuer
        self.service = service
        self.ttl = ttl

    def mint(self, subject: str, access: list[dict[str, Any]]) -> tuple[str, int]:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.ttl,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + b64url(signature), self.ttl


class Account:
    """One AWS account's public registry: its alias, repositories and catalog data."""

    def __init__(self, account: str, alias: str):
        self.account = account
        self.alias = alias
        self.repositories: dict[str, dict[str, Any]] = {}
        self.catalog: dict[str, dict[str, Any]] = {}


class Store:
    """Accounts (by access key id) and authorization tokens, in memory."""

    def __init__(
        self,
        account: str,
        alias: str,
        registry: str,
        auth_ttl: int,
        foreign: dict[str, Account],
        state_file: str | None = None,
    ):
        self.lock = threading.Lock()
        self.main = Account(account, alias)
        self.foreign = foreign
        self.registry = registry
        self.auth_ttl = auth_ttl
        self.tokens: dict[str, tuple[float, Account]] = {}
        self.state_file = state_file
        if state_file and os.path.exists(state_file):
            with open(state_file) as f:
                saved = json.load(f)
            by_id = {a.account: a for a in self.accounts()}
            for account_id, held in saved["accounts"].items():
                if account_id in by_id:
                    by_id[account_id].repositories = held["repositories"]
                    by_id[account_id].catalog = held["catalog"]
            self.tokens = {
                token: (expires, by_id[account_id])
                for token, (expires, account_id) in saved["tokens"].items()
                if account_id in by_id
            }

    def accounts(self) -> list[Account]:
        return [self.main, *self.foreign.values()]

    def save(self) -> None:
        """Writes what the store knows to the state file, if any; call with the lock held."""
        if not self.state_file:
            return
        saved = {
            "accounts": {
                a.account: {"repositories": a.repositories, "catalog": a.catalog} for a in self.accounts()
            },
            "tokens": {token: (expires, a.account) for token, (expires, a) in self.tokens.items()},
        }
        with open(self.state_file + ".tmp", "w") as f:
            json.dump(saved, f)
        os.replace(self.state_file + ".tmp", self.state_file)

    def account_for(self, access_key: str | None) -> Account:
        return self.foreign.get(access_key or "", self.main)

    def issue_auth_token(self, account: Account) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.auth_ttl
        with self.lock:
            self.tokens[token] = (expires, account)
            self.save()
        return token, expires

    def token_account(self, token: str) -> Account | None:
        with self.lock:
            entry = self.tokens.get(token)
        if entry is None or entry[0] <= time.time():
            return None
        return entry[1]

    def has_repository(self, account: Account, path: str) -> bool:
        prefix = account.alias + "/"
        if not path.startswith(prefix):
            return False
        with self.lock:
            return path[len(prefix) :] in account.repositories


class Api:
    """The ECR Public JSON actions the product uses."""

    def __init__(self, store: Store, issuer: TokenIssuer, ca_path: str, upstream: str | None = None):
        self.store = store
        self.issuer = issuer
        self.tls = ssl.create_default_context(cafile=ca_path)
        self.upstream = upstream

    def dispatch(self, action: str, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        if self.upstream and caller is self.store.main and action != "DescribeRegistries":
            return self._forward(action, body)
        handler = getattr(self, "action_" + action, None)
        if handler is None:
            raise ApiError("UnsupportedCommandException", f"{action} is not supported by this stand-in")
        return handler(body, caller)

    def _forward(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """The main account's action, answered by the upstream stand-in."""
        request = urllib.request.Request(
            self.upstream,
            data=json.dumps(body).encode(),
            headers={"X-Amz-Target": f"SpencerFrontendService.{action}", "Content-Type": "application/x-amz-json-1.1"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            payload = json.loads(err.read() or b"{}")
            raise ApiError(payload.get("__type", "ServerException"), payload.get("message", ""), err.code) from err

    def _repository(self, body: dict[str, Any], caller: Account) -> tuple[str, dict[str, Any]]:
        name = body.get("repositoryName", "")
        self._check_registry(body, caller)
        with self.store.lock:
            repo = caller.repositories.get(name)
        if repo is None:
            raise ApiError(
                "RepositoryNotFoundException",
                f"The repository with name '{name}' does not exist in the registry "
                f"with id '{caller.account}'",
            )
        return name, repo

    def _check_registry(self, body: dict[str, Any], caller: Account) -> None:
        registry_id = body.get("registryId")
        if registry_id not in (None, caller.account):
            raise ApiError("RegistryNotFoundException", f"registry '{registry_id}' does not exist")

    def action_DescribeRegistries(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        registry = {
            "registryId": caller.account,
            "registryArn": f"arn:aws:ecr-public::{caller.account}:registry/{caller.account}",
            "registryUri": f"{self.store.registry}/{caller.alias}",
            "verified": False,
            "aliases": [
                {"name": caller.alias, "status": "ACTIVE", "primaryRegistryAlias": True, "defaultRegistryAlias": True}
            ],
        }
        return {"registries": [registry]}

    def action_GetAuthorizationToken(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        token, expires = self.store.issue_auth_token(caller)
        return {
            "authorizationData": {
                "authorizationToken": base64.b64encode(f"AWS:{token}".encode()).decode(),
                "expiresAt": expires,
            }
        }

    def action_CreateRepository(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        self._check_registry(body, caller)
        name = body.get("repositoryName", "")
        if not (2 <= len(name) <= 205) or not REPOSITORY_NAME.match(name):
            raise ApiError("InvalidParameterException", f"Invalid parameter at 'repositoryName': '{name}'")
        repo = {
            "repositoryArn": f"arn:aws:ecr-public::{caller.account}:repository/{name}",
            "registryId": caller.account,
            "repositoryName": name,
            "repositoryUri": f"{self.store.registry}/{caller.alias}/{name}",
            "createdAt": time.time(),
        }
        with self.store.lock:
            if name in caller.repositories:
                raise ApiError(
                    "RepositoryAlreadyExistsException",
                    f"The repository with name '{name}' already exists in the registry "
                    f"with id '{caller.account}'",
                )
            caller.repositories[name] = repo
            caller.catalog[name] = self._catalog(body.get("catalogData") or {})
            self.store.save()
        return {"repository": repo, "catalogData": caller.catalog[name]}

    def action_DescribeRepositories(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        self._check_registry(body, caller)
        names = body.get("repositoryNames")
        with self.store.lock:
            if names:
                missing = [n for n in names if n not in caller.repositories]
                if missing:
                    raise ApiError(
                        "RepositoryNotFoundException",
                        f"The repository with name '{missing[0]}' does not exist in the "
                        f"registry with id '{caller.account}'",
                    )
                repos = [caller.repositories[n] for n in names]
            else:
                repos = sorted(caller.repositories.values(), key=lambda r: r["repositoryName"])
        return self._page(repos, body, "repositories")

    def action_PutRepositoryCatalogData(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        name, _ = self._repository(body, caller)
        data = self._catalog(body.get("catalogData") or {})
        with self.store.lock:
            caller.catalog[name] = data
            self.store.save()
        return {"catalogData": data}

    def action_GetRepositoryCatalogData(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        name, _ = self._repository(body, caller)
        with self.store.lock:
            return {"catalogData": dict(caller.catalog.get(name, {}))}

    def action_DescribeImages(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        name, _ = self._repository(body, caller)
        path = f"{caller.alias}/{name}"
        token, _ = self.issuer.mint("ecr-public-standin", [{"type": "repository", "name": path, "actions": ["pull"]}])
        tags = self._registry_json(f"/v2/{path}/tags/list", token).get("tags") or []
        images: dict[str, dict[str, Any]] = {}
        for tag in sorted(tags):
            digest, media_type, size = self._head_manifest(path, tag, token)
            image = images.setdefault(
                digest,
                {
                    "registryId": caller.account,
                    "repositoryName": name,
                    "imageDigest": digest,
                    "imageTags": [],
                    "imageSizeInBytes": size,
                    "imagePushedAt": time.time(),
                    "imageManifestMediaType": media_type,
                },
            )
            image["imageTags"].append(tag)
        wanted = body.get("imageIds")
        result = list(images.values())
        if wanted:
            result = [
                i
                for i in result
                if any(w.get("imageDigest") == i["imageDigest"] or w.get("imageTag") in i["imageTags"] for w in wanted)
            ]
            if not result:
                raise ApiError("ImageNotFoundException", f"The image requested does not exist in '{name}'")
        return self._page(result, body, "imageDetails")

    def action_DescribeImageTags(self, body: dict[str, Any], caller: Account) -> dict[str, Any]:
        name, _ = self._repository(body, caller)
        path = f"{caller.alias}/{name}"
        token, _ = self.issuer.mint("ecr-public-standin", [{"type": "repository", "name": path, "actions": ["pull"]}])
        tags = self._registry_json(f"/v2/{path}/tags/list", token).get("tags") or []
        details = []
        for tag in sorted(tags):
            digest, media_type, size = self._head_manifest(path, tag, token)
            details.append(
                {
                    "imageTag": tag,
                    "createdAt": time.time(),
                    "imageDetail": {
                        "imageDigest": digest,
                        "imageSizeInBytes": size,
                        "imagePushedAt": time.time(),
                        "imageManifestMediaType": media_type,
                    },
                }
            )
        return self._page(details, body, "imageTagDetails")

    def _registry_json(self, path: str, token: str) -> dict[str, Any]:
        request = urllib.request.Request(f"https://{self.store.registry}{path}", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return {}
            raise ApiError("ServerException", f"registry answered {err.code}", status=500) from err

    def _head_manifest(self, path: str, tag: str, token: str) -> tuple[str, str, int]:
        request = urllib.request.Request(
            f"https://{self.store.registry}/v2/{path}/manifests/{tag}",
            method="HEAD",
            headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST_TYPES},
        )
        with urllib.request.urlopen(request, context=self.tls, timeout=10) as response:
            return (
                response.headers["Docker-Content-Digest"],
                response.headers.get("Content-Type", ""),
                int(response.headers.get("Content-Length", "0")),
            )

    @staticmethod
    def _catalog(data: dict[str, Any]) -> dict[str, Any]:
        allowed = ("description", "architectures", "operatingSystems", "logoImageBlob", "aboutText", "usageText")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ApiError("InvalidParameterException", f"unknown catalogData fields: {', '.join(unknown)}")
        result = {k: v for k, v in data.items() if k != "logoImageBlob"}
        if "logoImageBlob" in data:
            result["logoUrl"] = "https://example.invalid/logo/" + hashlib.sha256(data["logoImageBlob"].encode()).hexdigest()
        return result

    @staticmethod
    def _page(items: list[Any], body: dict[str, Any], key: str) -> dict[str, Any]:
        start = int(body.get("nextToken") or 0)
        size = int(body.get("maxResults") or 100)
        page = items[start : start + size]
        result: dict[str, Any] = {key: page}
        if start + size < len(items):
            result["nextToken"] = str(start + size)
        return result


class ApiHandler(http.server.BaseHTTPRequestHandler):
    api: Api
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:  # keep the log to errors
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        action = target.rsplit(".", 1)[-1]
        credential = re.search(r"Credential=([^/,\s]+)/", self.headers.get("Authorization", ""))
        caller = self.api.store.account_for(credential.group(1) if credential else None)
        try:
            body = json.loads(raw or b"{}")
            status, payload = 200, self.api.dispatch(action, body, caller)
        except ApiError as err:
            status, payload = err.status, {"__type": err.kind, "message": err.message}
        except (ValueError, TypeError) as err:
            status, payload = 400, {"__type": "InvalidParameterException", "message": str(err)}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        if status != 200:
            self.send_header("x-amzn-ErrorType", payload["__type"])
        self.end_headers()
        self.wfile.write(data)


class TokenHandler(http.server.BaseHTTPRequestHandler):
    store: Store
    issuer: TokenIssuer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        from urllib.parse import parse_qs, urlparse

        url = urlparse(self.path)
        if url.path.rstrip("/") != "/token":
            return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        query = parse_qs(url.query)
        if query.get("service", [self.issuer.service])[0] != self.issuer.service:
            return self._reply(400, {"errors": [{"code": "DENIED", "message": "unknown service"}]})
        subject = self._authenticate()
        if subject is False:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="ecr-public-standin"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        access = [self._grant(scope, subject) for scope in query.get("scope", [])]
        name = f"AWS:{subject.account}" if subject else "anonymous"
        token, ttl = self.issuer.mint(name, [a for a in access if a])
        issued = dt.datetime.now(dt.timezone.utc).isoformat()
        self._reply(200, {"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued})

    def _authenticate(self) -> Account | None | bool:
        """The account of valid credentials, None when anonymous, False when refused."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        account = self.store.token_account(password) if user == "AWS" else None
        return account if account is not None else False

    def _grant(self, scope: str, account: Account | None) -> dict[str, Any] | None:
        parts = scope.split(":")
        if len(parts) != 3 or parts[0] != "repository":
            return None
        _, name, actions = parts
        wanted = set(actions.split(","))
        granted = {"pull"} & wanted
        if account is not None and self.store.has_repository(account, name):
            granted |= {"push", "delete"} & wanted
        return {"type": "repository", "name": name, "actions": sorted(granted)}

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-port", type=int, required=True)
    parser.add_argument("--token-port", type=int, required=True)
    parser.add_argument("--registry", required=True, help="host:port of the ECR Public stand-in registry")
    parser.add_argument("--alias", default="promoter-test", help="the registry alias (public.ecr.aws/<alias>)")
    parser.add_argument("--account", default="123456789012")
    parser.add_argument(
        "--upstream",
        help="the API URL of another stand-in that answers every action of the main account but "
        "DescribeRegistries (a private API in front of a registry whose token realm is that stand-in's)",
    )
    parser.add_argument(
        "--foreign",
        action="append",
        default=[],
        metavar="KEY=ACCOUNT:ALIAS",
        help="another account, chosen by the caller's access key id, with its own alias (repeatable)",
    )
    parser.add_argument("--service", default="ecr-public-test")
    parser.add_argument("--issuer", default="ecr-public-standin")
    parser.add_argument("--signing-key", required=True)
    parser.add_argument("--signing-cert", required=True)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--registry-token-ttl", type=int, default=int(os.environ.get("STANDIN_REGISTRY_TOKEN_TTL", "300")))
    parser.add_argument("--auth-token-ttl", type=int, default=int(os.environ.get("STANDIN_AUTH_TOKEN_TTL", str(12 * 3600))))
    parser.add_argument("--state-file", help="keep repositories, catalog data and tokens in this JSON file across restarts")
    args = parser.parse_args()

    foreign = {}
    for spec in args.foreign:
        key, _, rest = spec.partition("=")
        account, _, alias = rest.partition(":")
        if not (key and account and alias) or alias == args.alias:
            parser.error(f"--foreign {spec!r}: write KEY=ACCOUNT:ALIAS with an alias of its own")
        foreign[key] = Account(account, alias)
    store = Store(args.account, args.alias, args.registry, args.auth_token_ttl, foreign, args.state_file)
    issuer = TokenIssuer(args.signing_key, args.signing_cert, args.issuer, args.service, args.registry_token_ttl)
    ApiHandler.api = Api(store, issuer, args.ca, args.upstream)
    TokenHandler.store = store
    TokenHandler.issuer = issuer

    api_server = http.server.ThreadingHTTPServer(("127.0.0.1", args.api_port), ApiHandler)
    token_server = http.server.ThreadingHTTPServer(("127.0.0.1", args.token_port), TokenHandler)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.tls_cert, args.tls_key)
    token_server.socket = tls.wrap_socket(token_server.socket, server_side=True)
    threading.Thread(target=token_server.serve_forever, daemon=True).start()
    api_server.serve_forever()


if __name__ == "__main__":
    main()
