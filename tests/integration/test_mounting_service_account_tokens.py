"""A default pod finds its service-account credentials where Kubernetes puts them: devkube's
ServiceAccount admission adds the ``kube-api-access`` volume, the bridge renders its token
(TokenRequest), ``kube-root-ca.crt`` and namespace, the isolating agents mount them at
/var/run/secrets/kubernetes.io/serviceaccount in the container's own view, and the token
authenticates against devkube, over TLS checked with that ca.crt (embedded kernel with an
image directory + devkube + bridge)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from k8sbridge import app
from tests.integration.conftest import eventually

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


async def _finished(kube: Any, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = await kube.get_pod("default", name)
    return pod if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") else None


async def test_a_default_pod_reads_its_token_ca_and_namespace_and_the_token_works(
    embedded: app.EmbeddedTargets, tmp_path: Path,
) -> None:
    kube = embedded.bridge.kube
    out = tmp_path / "out"
    out.mkdir()
    url = embedded.api_url
    review = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    script = (
        f"ls {SA_DIR} > /out/ls; cp {SA_DIR}/token {SA_DIR}/ca.crt {SA_DIR}/namespace /out/; "
        f"touch {SA_DIR}/x; echo x 2> /out/ro > {SA_DIR}/token; "
        f'curl -sS --cacert {SA_DIR}/ca.crt -H "Authorization: Bearer $(cat {SA_DIR}/token)" '
        f"-H 'Content-Type: application/json' -d '{review}' "
        f"{url}/apis/authentication.k8s.io/v1/selfsubjectreviews > /out/whoami 2> /out/curl; "
        f'curl -sS --cacert {SA_DIR}/ca.crt -H "Authorization: Bearer $(cat {SA_DIR}/token)" '
        f"{url}/api/v1/namespaces/$(cat {SA_DIR}/namespace)/pods/reader > /out/self"
    )
    # With RBAC the default account may read nothing; the pod reads itself, so it is granted
    # exactly that (a Role and a RoleBinding, as on a real cluster).
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    await kube.create(f"{rbac}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "resourceNames": ["reader"],
                   "verbs": ["get"]}]})
    await kube.create(f"{rbac}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    await kube.create("/api/v1/namespaces/default/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{
                     "name": "main", "image": "busybox", "command": ["/bin/sh", "-c", script],
                     "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}},
                     "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
                 "volumes": [{"name": "out", "hostPath": {"path": str(out)}}]}})
    pod = await eventually(lambda: _finished(kube, "reader"), timeout=60, what="pod finished")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert (out / "ls").read_text().split() == ["ca.crt", "namespace", "token"]
    assert (out / "namespace").read_text() == "default"
    assert embedded.api_ca_file is not None
    assert (out / "ca.crt").read_text() == embedded.api_ca_file.read_text()
    assert "Read-only file system" in (out / "ro").read_text()
    assert not Path(SA_DIR, "x").exists()  # the mount was in the container's view only
    # Over TLS verified with the mounted ca.crt, the mounted token is the pod's identity.
    whoami = json.loads((out / "whoami").read_text())
    info = whoami["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:default:default"
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                              "system:authenticated"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["reader"]
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
    assert json.loads((out / "self").read_text())["metadata"]["uid"] == pod["metadata"]["uid"]
    # The token is bound to the pod, with the admission's 3607 s extended (warnafter).
    token = (out / "token").read_text()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["kubernetes.io"]["pod"] == {"name": "reader", "uid": pod["metadata"]["uid"]}
    assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
    assert claims["kubernetes.io"]["warnafter"] == claims["iat"] + 3607
    reply = await kube.create("/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}})
    assert reply["status"]["authenticated"] is True
    assert reply["status"]["user"]["username"] == "system:serviceaccount:default:default"
    # Once the pod is gone, so is its token's identity.
    await kube.delete_pod_now(namespace="default", name="reader", uid=pod["metadata"]["uid"])

    async def refused() -> bool:
        answer = await kube.create("/apis/authentication.k8s.io/v1/tokenreviews", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}})
        return not answer["status"].get("authenticated")

    await eventually(refused, what="token invalidated with its pod")
