"""TokenRequest (``serviceaccounts/NAME/token``) and the tokens it issues: the official client,
real kubectl (the pinned one and the machine's older one), raw HTTP for the refusals, the
token as a bearer credential, TokenReview, and the issuer's OIDC discovery + JWKS."""

from __future__ import annotations

import asyncio
import base64
import calendar
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from kubernetes import client, config

from k8sbridge.devkube import main, sakeys
from tests.devkube.server.conftest import Api

ISSUER = "https://kubernetes.default.svc.cluster.local"
TOKEN = "/api/v1/namespaces/default/serviceaccounts/default/token"
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
KUBECTLS = ["kubectl", "/usr/bin/kubectl"]  # the pinned one (test extras), the machine's


@pytest.fixture
async def kept(tmp_path: Path) -> AsyncIterator[tuple[main.Devkube, Api]]:
    """devkube with a data dir (its signing key is pki/sa.key) and the controllers."""
    cfg = main.DevkubeConfig(port=0, data_dir=tmp_path / "data")
    async with main.running(cfg) as dk, aiohttp.ClientSession() as session:
        yield dk, Api(devkube=dk, session=session)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _request(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


async def _as(api: Api, token: str, method: str, path: str,
              body: Any = None) -> tuple[int, Any]:
    saved, api.headers = api.headers, {"Authorization": f"Bearer {token}"}
    try:
        return await api.request(method, path, body=body)
    finally:
        api.headers = saved


async def test_the_official_client_gets_a_token_that_authenticates(
    kept: tuple[main.Devkube, Api],
) -> None:
    dk, api = kept
    core = client.CoreV1Api(config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(dk.kubeconfig)))
    try:
        raw: Any = await asyncio.to_thread(
            core.create_namespaced_service_account_token, "default", "default",
            client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
                audiences=[], expiration_seconds=1200)), _preload_content=False)
        reply: dict[str, Any] = json.loads(raw.data)
        read: Any = await asyncio.to_thread(core.read_namespaced_service_account, "default",
                                            "default", _preload_content=False)
        sa_uid = json.loads(read.data)["metadata"]["uid"]
    finally:
        core.api_client.close()
    token = reply["status"]["token"]
    claims = _claims(token)
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["exp"] - claims["iat"] == 1200 and claims["nbf"] == claims["iat"]
    assert claims["kubernetes.io"] == {
        "namespace": "default", "serviceaccount": {"name": "default", "uid": sa_uid}}
    assert reply["spec"] == {"audiences": [ISSUER], "expirationSeconds": 1200,
                             "boundObjectRef": None}
    assert reply["metadata"]["uid"] == sa_uid
    expires = time.strptime(reply["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(calendar.timegm(expires) - (time.time() + 1200)) < 5
    code, body = await _as(api, token, "POST", WHOAMI, {"kind": "SelfSubjectReview"})
    assert code == 201
    assert body["status"]["userInfo"]["username"] == "system:serviceaccount:default:default"
    assert body["status"]["userInfo"]["uid"] == sa_uid
    code, body = await _as(api, token, "GET", "/api/v1/namespaces/default/pods")
    assert code == 403  # RBAC: the account holds no binding yet
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    code, _ = await api.request("POST", f"{rbac}/namespaces/default/roles", body={
        "metadata": {"name": "pod-lister"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    assert code == 201
    code, _ = await api.request("POST", f"{rbac}/namespaces/default/rolebindings", body={
        "metadata": {"name": "default-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "pod-lister"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]})
    assert code == 201
    code, body = await _as(api, token, "GET", "/api/v1/namespaces/default/pods")
    assert code == 200  # allowed by its RoleBinding
    # Deleting the ServiceAccount ends the token (a new "default" has another uid).
    await api.request("DELETE", "/api/v1/namespaces/default/serviceaccounts/default")
    code, body = await _as(api, token, "GET", "/api/v1/namespaces/default/pods")
    assert code == 401 and body["message"] == "Unauthorized"


async def test_refusals_are_kube_apiservers(api: Api) -> None:
    code, body = await api.request("POST", TOKEN, body=_request(expirationSeconds=599))
    assert code == 422
    assert body["message"] == ('TokenRequest.authentication.k8s.io "" is invalid: '
                               "spec.expirationSeconds: Invalid value: 599: may not specify "
                               "a duration less than 10 minutes")
    code, body = await api.request("POST", TOKEN, body=_request(expirationSeconds=2**32 + 1))
    assert code == 422 and body["message"].endswith("larger than 2^32 seconds")
    code, body = await api.request(
        "POST", "/api/v1/namespaces/default/serviceaccounts/ghost/token", body=_request())
    assert code == 404 and body["message"] == 'serviceaccounts "ghost" not found'
    wrong = _request()
    wrong["metadata"] = {"name": "other"}
    code, body = await api.request("POST", TOKEN, body=wrong)
    assert code == 422 and body["message"] == (
        'TokenRequest.authentication.k8s.io "default" is invalid: metadata.name: Invalid '
        'value: "other": must match the service account name if specified')
    code, body = await api.request("POST", TOKEN, body=_request(expirationSeconds="long"))
    assert code == 400 and "cannot unmarshal string into Go struct field" in body["message"]
    code, body = await api.request("POST", TOKEN, body=_request(boundObjectRef={
        "kind": "ConfigMap", "apiVersion": "v1", "name": "x"}))
    assert code == 400
    assert body["message"] == "cannot bind token to object of type /v1, Kind=ConfigMap"
    await api.request("POST", "/api/v1/namespaces/default/pods", body={
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    code, body = await api.request("POST", TOKEN, body=_request(boundObjectRef={
        "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "not-its-uid"}))
    assert code == 409 and body["message"] == (
        'Operation cannot be fulfilled on Pod "p": the UID in the bound object reference '
        "(not-its-uid) does not match the UID in record. The object might have been deleted "
        "and then recreated")
    await api.request("POST", "/api/v1/namespaces/default/serviceaccounts",
                      body={"metadata": {"name": "other"}})
    code, body = await api.request(
        "POST", "/api/v1/namespaces/default/serviceaccounts/other/token",
        body=_request(boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p"}))
    assert code == 400 and body["message"] == (
        'cannot bind token for serviceaccount "other" to pod running with different '
        "serviceaccount name.")
    code, body = await api.request(
        "POST", TOKEN, body=_request(boundObjectRef={"kind": "Pod", "name": "gone"}))
    assert code == 404 and body["message"] == 'pods "gone" not found'
    code, _ = await api.request("GET", TOKEN)
    assert code == 405


async def test_bound_tokens_and_the_extended_admission_expiry(api: Api) -> None:
    code, pod = await api.request("POST", "/api/v1/namespaces/default/pods", body={
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}
    code, reply = await api.request("POST", TOKEN, body=_request(
        expirationSeconds=3607, boundObjectRef=ref))
    assert code == 201
    claims = _claims(reply["status"]["token"])
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600  # extended, warn after 3607 s
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": pod["metadata"]["uid"]}
    stamp = reply["status"]["expirationTimestamp"]  # the requested expiry, not the extension
    expires = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(expires - (claims["iat"] + 3607)) <= 1
    # Not extended for other audiences, other durations, or tokens bound to nothing.
    for spec in ({"expirationSeconds": 3607, "boundObjectRef": ref, "audiences": ["vault"]},
                 {"expirationSeconds": 3600, "boundObjectRef": ref},
                 {"expirationSeconds": 3607}):
        code, reply = await api.request("POST", TOKEN, body=_request(**spec))
        claims = _claims(reply["status"]["token"])
        assert claims["exp"] - claims["iat"] == spec["expirationSeconds"]
        assert "warnafter" not in claims["kubernetes.io"]
    code, review = await api.request("POST", REVIEWS, body={
        "kind": "TokenReview", "spec": {"token": reply["status"]["token"]}})
    assert review["status"]["authenticated"] is True
    code, bound = await api.request("POST", TOKEN, body=_request(boundObjectRef=ref))
    token = bound["status"]["token"]
    code, review = await api.request("POST", REVIEWS, body={
        "kind": "TokenReview", "spec": {"token": token}})
    user = review["status"]["user"]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert review["status"]["audiences"] == [ISSUER]
    code, review = await api.request("POST", REVIEWS, body={
        "kind": "TokenReview", "spec": {"token": token, "audiences": ["vault"]}})
    assert review["status"].get("authenticated") is None
    assert review["status"]["error"] == (
        f'token audiences ["{ISSUER}"] is invalid for the target audiences ["vault"]')
    # The pod goes, and a new pod of the same name does not revive the token.
    await api.request("DELETE", "/api/v1/namespaces/default/pods/p")
    await api.request("POST", "/api/v1/namespaces/default/pods", body={
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    code, review = await api.request("POST", REVIEWS, body={
        "kind": "TokenReview", "spec": {"token": token}})
    assert review["status"]["error"].startswith("pod UID (")
    code, _ = await _as(api, token, "GET", "/api/v1/namespaces/default/pods")
    assert code == 401


async def test_expired_foreign_and_forged_tokens_do_not_authenticate(
    kept: tuple[main.Devkube, Api],
) -> None:
    dk, api = kept
    key = sakeys.ensure(dk.kubeconfig.parent / "pki")  # devkube's own key, from its data dir
    code, sa = await api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
    now = int(time.time())
    base = {"iss": ISSUER, "sub": "system:serviceaccount:default:default", "aud": [ISSUER],
            "kubernetes.io": {"namespace": "default", "serviceaccount": {
                "name": "default", "uid": sa["metadata"]["uid"]}}}

    async def review(token: str) -> dict[str, Any]:
        code, body = await api.request("POST", REVIEWS, body={
            "kind": "TokenReview", "spec": {"token": token}})
        assert code == 201
        status: dict[str, Any] = body["status"]
        return status

    fresh = key.sign({**base, "iat": now, "nbf": now, "exp": now + 600})
    assert (await review(fresh))["authenticated"] is True
    within_leeway = key.sign({**base, "iat": now - 700, "nbf": now - 700, "exp": now - 30})
    assert (await review(within_leeway))["authenticated"] is True
    expired = key.sign({**base, "iat": now - 700, "nbf": now - 700, "exp": now - 90})
    assert (await review(expired))["error"] == "service account token has expired"
    early = key.sign({**base, "iat": now, "nbf": now + 300, "exp": now + 900})
    assert (await review(early))["error"] == "service account token is not valid yet"
    other = sakeys.SigningKey.generate().sign({**base, "iat": now, "nbf": now, "exp": now + 600})
    assert (await review(other))["error"] == "invalid bearer token"
    foreign = key.sign({**base, "iss": "https://elsewhere", "iat": now, "nbf": now,
                        "exp": now + 600})
    assert (await review(foreign))["error"] == "invalid bearer token"
    head, payload, signature = fresh.split(".")
    forged = ".".join([head, sakeys.b64url(json.dumps(
        {**_claims(fresh), "sub": "system:admin"}).encode()), signature])
    assert (await review(forged))["error"] == "invalid bearer token"
    for token in (expired, other, forged):
        code, _ = await _as(api, token, "GET", "/api/v1/namespaces")
        assert code == 401


def _number(jwk: dict[str, Any], field: str) -> int:
    raw = base64.urlsafe_b64decode(jwk[field] + "=" * (-len(jwk[field]) % 4))
    return int.from_bytes(raw, "big")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_oidc_discovery_and_jwks_verify_the_tokens(api: Api) -> None:
    code, doc = await api.request("GET", "/.well-known/openid-configuration")
    assert code == 200
    assert doc == {"issuer": ISSUER, "jwks_uri": api.devkube.url + "/openid/v1/jwks",
                   "response_types_supported": ["id_token"],
                   "subject_types_supported": ["public"],
                   "id_token_signing_alg_values_supported": ["ES256"]}
    code, jwks = await api.request("GET", "/openid/v1/jwks")
    assert code == 200
    (jwk,) = jwks["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["crv"]) == ("EC", "ES256", "sig", "P-256")
    public = ec.EllipticCurvePublicNumbers(
        x=_number(jwk, "x"), y=_number(jwk, "y"), curve=ec.SECP256R1()).public_key()
    code, reply = await api.request("POST", TOKEN, body=_request())
    head, payload, signature = reply["status"]["token"].split(".")
    header = json.loads(_unb64(head))
    assert header == {"alg": "ES256", "kid": jwk["kid"]}
    raw = _unb64(signature)
    assert len(raw) == 64  # JWS ES256: r || s, 32 bytes each (RFC 7518 3.4), not DER
    public.verify(encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                       int.from_bytes(raw[32:], "big")),
                  f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    saved, api.headers = api.headers, {}
    try:
        code, _ = await api.request("GET", "/openid/v1/jwks")
    finally:
        api.headers = saved
    assert code == 401  # like kube-apiserver without an anonymous binding


async def test_a_data_dir_with_an_rsa_key_keeps_signing_rs256(tmp_path: Path) -> None:
    pki = tmp_path / "data" / "pki"
    pki.mkdir(parents=True)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pki / "sa.key").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cfg = main.DevkubeConfig(port=0, data_dir=tmp_path / "data")
    async with main.running(cfg) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        code, doc = await api.request("GET", "/.well-known/openid-configuration")
        assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
        code, jwks = await api.request("GET", "/openid/v1/jwks")
        (jwk,) = jwks["keys"]
        assert (jwk["kty"], jwk["alg"]) == ("RSA", "RS256")
        public = rsa.RSAPublicNumbers(e=_number(jwk, "e"), n=_number(jwk, "n")).public_key()
        assert public.public_numbers() == rsa_key.public_key().public_numbers()
        code, reply = await api.request("POST", TOKEN, body=_request())
        assert code == 201
        token = reply["status"]["token"]
        head, payload, signature = token.split(".")
        assert json.loads(_unb64(head)) == {"alg": "RS256", "kid": jwk["kid"]}
        public.verify(_unb64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                      hashes.SHA256())
        code, _ = await _as(api, token, "GET", "/api/v1/namespaces/default/pods")
        assert code != 401  # the token authenticates (what it may do is RBAC's)


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_kubectl_create_token_and_auth_whoami(
    kept: tuple[main.Devkube, Api], kubectl: str, tmp_path: Path,
) -> None:
    dk, api = kept
    env = {**os.environ, "KUBECONFIG": str(dk.kubeconfig), "KUBECACHEDIR": str(tmp_path)}

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [kubectl, *args], capture_output=True,
                                       text=True, env=env, timeout=60)

    made = await run("create", "token", "default", "--duration", "20m")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert _claims(token)["exp"] - _claims(token)["iat"] == 1200
    whoami = await run("auth", "whoami", "--token", token, "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == (
        "system:serviceaccount:default:default")
    short = await run("create", "token", "default", "--duration", "10s")
    assert short.returncode != 0
    assert ("may not specify a duration less than 10 minutes" in short.stderr), short.stderr
    await api.request("POST", "/api/v1/namespaces/default/pods", body={
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
    bound = await run("create", "token", "default", "--bound-object-kind", "Pod",
                      "--bound-object-name", "p", "--audience", "vault")
    assert bound.returncode == 0, bound.stderr
    claims = _claims(bound.stdout.strip())
    assert claims["aud"] == ["vault"] and claims["kubernetes.io"]["pod"]["name"] == "p"
    stale = await run("create", "token", "default", "--bound-object-kind", "Pod",
                      "--bound-object-name", "p", "--bound-object-uid", "nope")
    assert stale.returncode != 0 and "does not match the UID in record" in stale.stderr
    missing = await run("create", "token", "ghost")
    assert missing.returncode != 0 and 'serviceaccounts "ghost" not found' in missing.stderr
    pods = await run("get", "pod", "p", "-o", "json", "--token", token)
    assert pods.returncode == 1 and "Forbidden" in pods.stderr  # RBAC: no binding yet
    assert (await run("create", "role", "pod-reader", "--verb=get",
                      "--resource=pods")).returncode == 0
    assert (await run("create", "rolebinding", "default-reads-pods", "--role=pod-reader",
                      "--serviceaccount=default:default")).returncode == 0
    pods = await run("get", "pod", "p", "-o", "json", "--token", token)
    assert pods.returncode == 0, pods.stderr
    spec = json.loads(pods.stdout)["spec"]
    assert spec["volumes"][0]["projected"]["sources"][0] == {
        "serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}


async def test_the_serving_certificate_names_the_in_cluster_service(
    kept: tuple[main.Devkube, Api],
) -> None:
    """What a pod's ca.crt verifies: kube-apiserver's names for the ``kubernetes`` Service."""
    dk, _ = kept
    cert = x509.load_pem_x509_certificate((dk.kubeconfig.parent / "pki" /
                                           "apiserver.crt").read_bytes())
    names = {str(n.value) for n in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value}
    assert {"kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1",
            "127.0.0.1"} <= names
