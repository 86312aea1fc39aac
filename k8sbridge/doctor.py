"""``k8sbridge doctor``: a deployment's prerequisites checked from where the bridge will run,
with what is wrong said on one screen.

Why: the bridge talks to two systems with credentials, authorization and network paths of their
own; when one is missing it fails later and in pieces (a 403 on the first bind, a kubelet port
the API server cannot reach, pods stuck without a network). The doctor asks each question once,
the way the bridge will: the Mesos master's operator API (reachable, which version, credentials
accepted), each agent's flags (a CNI network for ``scheduler.pod_network``), the Kubernetes API
(reachable; a ``SelfSubjectAccessReview`` for every permission the bridge uses, the same list
``manifests/deploy/rbac.yaml`` grants: a test keeps the two equal), and the kubelet API's port
(someone answers there, or this host can bind it). Pure parts (the permission list, the report)
are separate from the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from k8sbridge import settings as bridge_settings
from k8sbridge.kube import client as kube_client
from k8sbridge.kube import errors as kube_errors
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.mesos import operator as mesos_operator
from k8sbridge.mesos import transport as mesos_transport

__all__ = ["OK", "FAIL", "WARN", "Access", "Result", "REQUIRED_ACCESS", "register", "report"]

OK, WARN, FAIL = "ok", "warn", "FAIL"
MIN_MESOS = (1, 9)
BRIDGE_NAMESPACE = "<bridge namespace>"  # kube.namespace, filled in when checked


@dataclasses.dataclass(frozen=True, slots=True)
class Access:
    """One permission: ``verb`` on ``group``/``resource`` (``resource/subresource``), in
    ``namespace`` ("": every namespace, as a ClusterRole grants)."""

    verb: str
    group: str
    resource: str
    namespace: str = ""


def _each(verbs: str, group: str, resources: str, namespace: str = "") -> list[Access]:
    return [Access(v, group, r, namespace) for r in resources.split() for v in verbs.split()]


# What the bridge does (manifests/deploy/rbac.yaml grants exactly these).
REQUIRED_ACCESS: tuple[Access, ...] = (
    *_each("get list watch delete", "", "pods"),
    *_each("create", "", "pods/binding"),
    *_each("get patch update", "", "pods/status"),
    *_each("get list watch create patch update delete", "", "nodes"),
    *_each("get patch update", "", "nodes/status"),
    *_each("get", "", "configmaps secrets"),
    *_each("create", "", "serviceaccounts/token"),
    *_each("create patch update", "", "events"),
    *_each("create patch update", "events.k8s.io", "events"),
    *_each("create", "authentication.k8s.io", "tokenreviews"),
    *_each("create", "authorization.k8s.io", "subjectaccessreviews"),
    *_each("get list watch create update patch delete", "coordination.k8s.io", "leases",
           "kube-node-lease"),
    *_each("list watch", "", "services"),
    *_each("list", "policy", "poddisruptionbudgets"),
    *_each("get", "scheduling.x-k8s.io", "podgroups"),
    *_each("get create update patch", "", "configmaps", BRIDGE_NAMESPACE),
    *_each("get create update", "coordination.k8s.io", "leases", BRIDGE_NAMESPACE),
)


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    status: str  # OK, WARN or FAIL
    check: str
    detail: str


def report(results: list[Result]) -> str:
    """One line per check, then the verdict."""
    width = max((len(r.check) for r in results), default=0)
    lines = [f"{r.status:<4}  {r.check:<{width}}  {r.detail}" for r in results]
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    lines.append("")
    lines.append(f"{failed} problem(s), {warned} warning(s)" if failed or warned
                 else "everything the bridge needs is in place")
    return "\n".join(lines)


# -- the checks ------------------------------------------------------------------------------


async def check_mesos(settings: bridge_settings.BridgeSettings) -> list[Result]:
    secret = None
    if settings.mesos.secret_file is not None:
        try:
            secret = settings.mesos.secret_file.read_text(encoding="utf-8").strip()
        except OSError as e:
            return [Result(FAIL, "mesos credentials", f"cannot read mesos.secret_file: {e}")]
    config = mesos_transport.ClientConfig(
        masters=settings.mesos.masters, principal=settings.mesos.principal, secret=secret,
        ca_file=str(settings.mesos.ca_file) if settings.mesos.ca_file else None)
    client = mesos_operator.OperatorClient(transport=mesos_transport.Transport(config=config),
                                           timeout=5.0)
    out: list[Result] = []
    masters = ", ".join(settings.mesos.masters)
    try:
        try:
            version = await client.get_version()
        except mesos_errors.MesosError as e:
            text = str(e)
            # the operator client wraps the transport's error: a 401 is its cause
            if isinstance(e, mesos_errors.Unauthorized) \
                    or isinstance(e.__cause__, mesos_errors.Unauthorized):
                out.append(Result(OK, "mesos master", f"{masters} answers"))
                out.append(Result(FAIL, "mesos credentials", f"refused ({text}); check "
                                  "mesos.principal and mesos.secret_file"))
            else:
                out.append(Result(FAIL, "mesos master", f"{masters}: {text}"))
            return out
        major_minor = tuple(int(x) for x in version.version.split(".")[:2] if x.isdigit())
        status = OK if major_minor >= MIN_MESOS else FAIL
        out.append(Result(status, "mesos master", f"{masters} answers: Mesos {version.version}"
                          + ("" if status == OK else " (the bridge needs 1.9 or later)")))
        out.append(Result(OK, "mesos credentials",
                          f"accepted (principal {settings.mesos.principal})"
                          if settings.mesos.principal else "none needed (no principal set)"))
        out.extend(await _check_agents(client, settings))
    finally:
        await client.close()
    return out


async def _check_agents(client: mesos_operator.OperatorClient,
                        settings: bridge_settings.BridgeSettings) -> list[Result]:
    agents = await client.get_agents()
    if not agents:
        return [Result(WARN, "mesos agents", "none registered: no node, nothing to run on")]
    out = [Result(OK, "mesos agents", f"{len(agents)} registered")]
    network = settings.scheduler.pod_network
    if not network:
        return out
    lacking = []
    for agent in agents:
        try:
            reply = await client.agent_call(client.agent_url(agent.address, "/api/v1"),
                                            {"type": "GET_FLAGS"})
        except mesos_errors.MesosError as e:
            lacking.append(f"{agent.hostname} (GET_FLAGS: {e})")
            continue
        flags = {f.get("name"): f.get("value") for f in
                 ((reply or {}).get("get_flags") or {}).get("flags") or []}
        isolation = str(flags.get("isolation") or "")
        if "network/cni" not in isolation or not flags.get("network_cni_config_dir"):
            lacking.append(agent.hostname)
    if lacking:
        out.append(Result(FAIL, "pod network", f"scheduler.pod_network is '{network}' but these "
                          "agents run without the network/cni isolator and "
                          "--network_cni_config_dir: " + ", ".join(lacking) + " (pods there "
                          "would fail to launch; set scheduler.pod_network \"\" to keep the "
                          "agents' network)"))
    else:
        out.append(Result(OK, "pod network", f"every agent has the network/cni isolator "
                          f"(network '{network}' must be in their --network_cni_config_dir)"))
    return out


async def check_kubernetes(settings: bridge_settings.BridgeSettings) -> list[Result]:
    try:
        kube = kube_client.KubeClient.from_kubeconfig(
            path=settings.kube.kubeconfig, context=settings.kube.context, connections=4,
            timeout=10.0)
    except kube_errors.KubeError as e:
        return [Result(FAIL, "kubernetes API", f"no credentials: {e}")]
    out: list[Result] = []
    try:
        try:
            version = await kube.get("/version")
        except kube_errors.KubeError as e:
            return [Result(FAIL, "kubernetes API", f"{kube.connection().server}: {e}")]
        out.append(Result(OK, "kubernetes API", f"{kube.connection().server} answers: "
                          f"{version.get('gitVersion', '?')}"))
        denied = []
        for access in REQUIRED_ACCESS:
            namespace = (settings.kube.namespace if access.namespace == BRIDGE_NAMESPACE
                         else access.namespace)
            resource, _, subresource = access.resource.partition("/")
            review = await kube.create(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                 "spec": {"resourceAttributes": {
                     "verb": access.verb, "group": access.group, "resource": resource,
                     "subresource": subresource, "namespace": namespace}}})
            if not (review.get("status") or {}).get("allowed"):
                where = f" in {namespace}" if namespace else ""
                denied.append(f"{access.verb} {access.group or 'core'}/{access.resource}{where}")
        if denied:
            out.append(Result(FAIL, "kubernetes RBAC", f"{len(denied)} of "
                              f"{len(REQUIRED_ACCESS)} permissions missing (apply "
                              "manifests/deploy/rbac.yaml): " + "; ".join(denied)))
        else:
            out.append(Result(OK, "kubernetes RBAC",
                              f"all {len(REQUIRED_ACCESS)} permissions granted"))
    except kube_errors.KubeError as e:
        out.append(Result(FAIL, "kubernetes RBAC", f"SelfSubjectAccessReview failed: {e}"))
    finally:
        await kube.close()
    return out


async def check_kubelet_port(settings: bridge_settings.BridgeSettings) -> list[Result]:
    host = settings.kubelet.advertise_address or "127.0.0.1"
    port = settings.kubelet.port
    if port == 0:
        return [Result(OK, "kubelet port", "any free port (kubelet.port 0)")]
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=3.0)
        writer.close()
        return [Result(OK, "kubelet port", f"{host}:{port} accepts connections (a bridge "
                       "already listens there)")]
    except (OSError, TimeoutError):
        pass
    bind = "" if not settings.kubelet.host else settings.kubelet.host.split(",")[0]
    try:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bind, port))
    except OSError as e:
        return [Result(FAIL, "kubelet port", f"cannot listen on {bind or '*'}:{port}: {e}")]
    return [Result(OK, "kubelet port", f"{bind or '*'}:{port} is free: the API server must reach "
                   f"{host}:{port} (advertised address; open it in firewalls)")]


# -- the command -----------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("doctor", help="check a deployment's prerequisites",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="the bridge's settings file")
    parser.add_argument("--master", default=None, help="Mesos master URL(s), comma-separated")
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--context", default=None)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    flags = {"mesos": {"masters": args.master},
             "kube": {"kubeconfig": args.kubeconfig, "context": args.context}}
    try:
        settings = bridge_settings.load(flags=flags, config_file=args.config)
    except bridge_settings.SettingsError as e:
        print(f"FAIL  settings  {e}")
        return 1
    checks: list[Callable[[bridge_settings.BridgeSettings], Awaitable[list[Result]]]] = [
        check_mesos, check_kubernetes, check_kubelet_port]

    async def all_checks() -> list[Result]:
        results = [Result(OK, "settings", str(args.config) if args.config else "defaults and "
                          "environment")]
        for check in checks:
            results.extend(await check(settings))
        return results

    results = asyncio.run(all_checks())
    print(report(results))
    sys.stdout.flush()
    return 1 if any(r.status == FAIL for r in results) else 0
