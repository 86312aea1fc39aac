"""``k8sbridge run``: the bridge, either against real systems or as the embedded default.

Why a subcommand of its own: with no target flags it is the newcomer's one command (kernel with
agents + devkube + bridge, a kubeconfig written to DATA_DIR/kubeconfig); with ``--master`` and
``--kubeconfig`` (or in-cluster credentials) it is the production entry point. Either way the
settings come from flags > ``K8SBRIDGE_*`` environment > ``--config FILE`` (see settings.py),
and Ctrl-C / SIGTERM stop everything cleanly.

The embedded default is a supervisor: it runs ``k8sbridge kernel``, ``k8sbridge devkube`` and
the bridge (this command with ``--master``/``--kubeconfig``) as child processes
(``embedded.running_processes``), so this module imports the bridge's modules (app.py) only
when it runs the bridge itself: neither the supervisor nor the stand-in children load them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from k8sbridge import settings as bridge_settings

__all__ = ["register"]

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the bridge (embedded kernel + devkube when no --master/--kubeconfig)",
        description=(
            "Run k8sbridge. Without --master/--kubeconfig: the embedded default (a kernel with "
            "--agents agents, devkube and the bridge, as three child processes, and with the "
            "cluster network the service proxy as a fourth, whose output "
            "is shown labelled and kept in DATA_DIR/logs/{kernel,devkube,bridge,proxy}.log; writes "
            "DATA_DIR/kubeconfig; a child that crashes is restarted with back-off, 1 s "
            "doubling to 30 s, while the others and the pods keep running; Ctrl-C stops "
            "everything). "
            "With them: the bridge alone against a Mesos master and a Kubernetes cluster. "
            "Every setting "
            "can also come from the environment (K8SBRIDGE_<SECTION>_<FIELD>, e.g. "
            "K8SBRIDGE_MESOS_ROLES=a,b) or a YAML file (--config)."
        ),
    )
    parser.add_argument("--config", type=Path, default=None, help="YAML settings file")
    emb = parser.add_argument_group("embedded default")
    emb.add_argument("--data-dir", type=Path, default=None,
                     help="state directory (default ./.k8sbridge)")
    emb.add_argument("--kernel-port", type=int, default=None, help="kernel master port (5050)")
    emb.add_argument("--api-port", type=int, default=None, help="devkube API port (6443)")
    emb.add_argument("--agents", type=int, default=None, help="number of agents (3)")
    emb.add_argument("--bridge-replicas", type=int, default=None, metavar="N",
                     help="bridge child processes (1); 2+ elect a leader, a killed one comes "
                     "back as the standby")
    emb.add_argument("--kernel-auth", type=_on_off, default=True, metavar="on|off",
                     help="Mesos authentication at the embedded kernel (default on: "
                     "credentials generated in DATA_DIR/credentials.json, 0600; the bridge "
                     "authenticates as 'k8sbridge', people and tools as 'operator', e.g. "
                     "curl --netrc-file DATA_DIR/kernel.netrc; Mesos ACLs in "
                     "DATA_DIR/acls.json, 0600, permissive false: 'k8sbridge' registers its "
                     "roles and tears down only its own framework, 'operator' registers other "
                     "roles and tears down any framework, both run tasks only as this user)")
    emb.add_argument("--kernel-tls", type=_on_off, default=None, metavar="on|off",
                     help="TLS at the embedded kernel (setting embedded.tls, default on: "
                     "libprocess' LIBPROCESS_SSL_* settings with a CA and certificate made in "
                     "DATA_DIR/kernel-pki; the master and agents serve https, the bridge "
                     "verifies them with that CA, e.g. curl --cacert "
                     "DATA_DIR/kernel-pki/ca.crt)")
    emb.add_argument("--agent-resources", default=None, metavar="SPEC",
                     help="Mesos --resources of every agent (default: three built-in shapes "
                     "of 4, 2 and 8 cpus)")
    emb.add_argument("--image-dir", type=Path, default=None, metavar="DIR",
                     help="the agents' local docker registry (default DATA_DIR/images, "
                     "created if absent): 'docker save' archives named repository:tag.tar. "
                     "The agents always isolate as Mesos does (a root of its own per "
                     "container, volumes, pid namespaces, users, capabilities): a pod's image "
                     "runs from here when its archive is present, else on a copy-on-write "
                     "view of the host's root")
    emb.add_argument("--cluster-network", type=_on_off, default=None, metavar="on|off",
                     help="give pods IPs of their own on the cluster network, a network "
                     "namespace made on start and removed on stop (default on; needs root and "
                     "the CNI plugins in /usr/lib/cni, else only hostNetwork pods start; off: "
                     "pods keep the agents' network)")
    emb.add_argument("--cluster-cidr", default=None, metavar="CIDR",
                     help="pod range of the cluster network, a subnet per agent "
                     "(10.88.0.0/16)")
    emb.add_argument("--node-cidr-mask-size", type=int, default=None, metavar="BITS",
                     help="prefix length of each agent's pod subnet, as kube-controller-"
                     "manager's flag (24: 253 pods per agent)")
    ext = parser.add_argument_group("external targets")
    ext.add_argument("--master", default=None,
                     help="Mesos master URL(s), comma-separated (http://host:5050)")
    ext.add_argument("--kubeconfig", type=Path, default=None,
                     help="kubeconfig (default: in-cluster credentials)")
    ext.add_argument("--context", default=None, help="kubeconfig context")
    br = parser.add_argument_group("bridge")
    br.add_argument("--role", action="append", default=None,
                    help="Mesos role (repeatable; default kubernetes)")
    br.add_argument("--scheduler-name", action="append", default=None,
                    help="schedulerName(s) served (repeatable; default k8sbridge)")
    br.add_argument("--namespace", default=None, help="the bridge's own namespace")
    br.add_argument("--kubelet-port", type=int, default=None,
                    help="kubelet HTTPS API port (10250; 0 = any free port)")
    br.add_argument("--kubelet-address", default=None,
                    help="address the API server uses to reach the kubelet API")
    br.add_argument("--kubelet-bind", default=None,
                    help="address the kubelet API listens on (default: 127.0.0.1 in the "
                    "embedded default, 0.0.0.0 with --master/--kubeconfig)")
    br.add_argument("--kubelet-client-ca", type=Path, default=None,
                    help="CA that signs the API server's kubelet client certificate "
                    "(embedded default: devkube's CA)")
    br.add_argument("--kubelet-anonymous", action="store_true", default=None,
                    help="serve unauthenticated kubelet API requests (off by default)")
    br.add_argument("--ranking", choices=["spread", "binpack"], default=None)
    br.add_argument("--cluster-dns", action="append", default=None, metavar="IP",
                    help="nameserver of pods with dnsPolicy ClusterFirst (repeatable; the "
                    "kubelet's --cluster-dns; default none: such pods get the agent's "
                    "resolv.conf and a MissingClusterDNS warning)")
    br.add_argument("--pod-network", default=None, metavar="NAME",
                    help="the CNI network pods join (default k8sbridge; '' keeps every pod on "
                    "its agent's network; hostNetwork and hostPort pods always do)")
    br.add_argument("--cluster-domain", default=None, metavar="DOMAIN",
                    help="the cluster's DNS domain in pods' search paths and FQDNs "
                    "(cluster.local)")
    parser.set_defaults(func=_run)


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")


def _flags(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {
        "mesos": {
            "masters": args.master,
            "roles": tuple(args.role) if args.role else None,
        },
        "kube": {
            "kubeconfig": args.kubeconfig,
            "context": args.context,
            "namespace": args.namespace,
        },
        "scheduler": {
            "scheduler_names": tuple(args.scheduler_name) if args.scheduler_name else None,
            "ranking": args.ranking,
            "cluster_dns": tuple(args.cluster_dns) if args.cluster_dns else None,
            "cluster_domain": args.cluster_domain,
            "pod_network": args.pod_network,
        },
        "kubelet": {
            "port": args.kubelet_port,
            "advertise_address": args.kubelet_address,
            "host": args.kubelet_bind,
            "client_ca_file": args.kubelet_client_ca,
            "anonymous": args.kubelet_anonymous,
        },
        "embedded": {
            "data_dir": args.data_dir,
            "kernel_port": args.kernel_port,
            "api_port": args.api_port,
            "agents": args.agents,
            "bridge_replicas": args.bridge_replicas,
            "agent_resources": args.agent_resources,
            "image_dir": args.image_dir,
            "cluster_network": args.cluster_network,
            "cluster_cidr": args.cluster_cidr,
            "node_cidr_mask_size": args.node_cidr_mask_size,
            "tls": args.kernel_tls,
        },
    }


def _run(args: argparse.Namespace) -> int:
    try:
        settings = bridge_settings.load(flags=_flags(args), config_file=args.config)
    except bridge_settings.SettingsError as e:
        print(f"k8sbridge run: {e}", file=sys.stderr)
        return 2
    external = args.master is not None or args.kubeconfig is not None
    if not external:
        try:
            bridge_settings.check_embedded_pods(settings)
        except bridge_settings.SettingsError as e:
            print(f"k8sbridge run: {e}", file=sys.stderr)
            return 2
    try:
        if external:
            return asyncio.run(_external(settings))
        return asyncio.run(_embedded(settings, log_level=args.log_level,
                                     authenticate=args.kernel_auth))
    except KeyboardInterrupt:
        return 130


async def _embedded(
    settings: bridge_settings.BridgeSettings, *, log_level: str, authenticate: bool
) -> int:
    from k8sbridge import embedded, supervise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # A closed terminal stops the children in order too (without this, SIGHUP would end this
    # process and the children would all get SIGTERM at once from PR_SET_PDEATHSIG).
    loop.add_signal_handler(signal.SIGHUP, stop.set)
    try:
        async with embedded.running_processes(
            settings, log_level=log_level, stop=stop, echo=sys.stderr.buffer,
            authenticate=authenticate,
        ) as emb:
            pids = ", ".join(f"{c.spec.name} pid {c.pid}" for c in emb.group.children)
            creds = emb.credentials
            curl = f"curl --netrc-file {creds.netrc} " if creds is not None else "curl "
            if emb.kernel_ca_file is not None:
                curl += f"--cacert {emb.kernel_ca_file} "
            print(f"kernel (Mesos v1 API): {emb.kernel_url}  (state: {curl}{emb.kernel_url}/state)")
            if creds is not None:
                print(f"kernel credentials: {creds.file} (0600; the bridge is principal "
                      f"'k8sbridge', people and tools 'operator'); anonymous calls get 401; "
                      f"ACLs: {emb.acls} (permissive false)")
            else:
                print("kernel authentication is OFF (--kernel-auth off): anyone on this host "
                      "can tear down the bridge's framework", file=sys.stderr)
            if emb.kernel_ca_file is None:
                print("kernel TLS is OFF (--kernel-tls off): the kernel's credentials and "
                      "calls cross this host's network in clear text", file=sys.stderr)
            print(f"kubernetes API (devkube): {emb.api_url}")
            print(f"processes: {pids}; logs in {emb.logs_dir}/")
            if emb.cluster_netns is not None:
                print(f"cluster network: pods in {settings.embedded.cluster_cidr}, reachable "
                      f"from its namespace: sudo ip netns exec {emb.cluster_netns} ...")
                print(f"service proxy: ClusterIP and NodePort Services in that namespace "
                      f"(sudo ip netns exec {emb.cluster_netns} nft list table ip kube-proxy)")
            print(f"kubectl --kubeconfig {emb.kubeconfig} get nodes,pods -o wide")
            print("k8sbridge is ready; Ctrl-C stops everything", flush=True)
            # A child that crashes is restarted with back-off; the others and every workload
            # keep running. Only Ctrl-C / SIGTERM / SIGHUP end this.
            await emb.group.keep_running(stop=stop, say=_say)
            print("stopping (the bridge, the proxy, the DNS, devkube, then the kernel) ...",
                  flush=True)
    except supervise.Interrupted as e:
        print(f"k8sbridge run: {e}", file=sys.stderr)
        return 130
    except supervise.ChildError as e:
        print(f"k8sbridge run: {e}", file=sys.stderr)
        return 1
    return 0


def _say(message: str) -> None:
    print(f"k8sbridge run: {message}", file=sys.stderr, flush=True)


async def _external(settings: bridge_settings.BridgeSettings) -> int:
    from k8sbridge import app

    stop = asyncio.Event()
    app.install_signal_handlers(stop)
    if not await _credentials_accepted(settings, stop=stop):
        return 0  # stopped while the master refused us
    if settings.leader.enabled:
        return await _replica(settings, stop=stop)
    try:
        async with app.running_bridge(settings) as bridge:
            framework = bridge.framework
            print(f"k8sbridge is ready: framework {framework.framework_id}, "
                  f"kubelet API on port {bridge.kubelet_port}", flush=True)
            # A framework the master removed registers anew inside the driver, and the offer
            # loop then forgets the old framework's tasks (``Scheduler._forget_framework``).
            await _first_set(stop, framework.finished)
    except Exception as e:  # a component failed for good: say so, never hang
        log.error("the bridge stopped: %s", e, exc_info=True)
        print(f"k8sbridge run: the bridge stopped: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


async def _replica(settings: bridge_settings.BridgeSettings, *, stop: asyncio.Event) -> int:
    """One of 2+ replicas (settings.leader): standby until it leads (``replica``)."""
    from k8sbridge import replica

    async def leading(bridge: Any) -> None:
        print(f"k8sbridge is ready (leader): framework {bridge.framework.framework_id}, "
              f"kubelet API on port {bridge.kubelet_port}", flush=True)

    print("k8sbridge is a standby until it holds the leader Lease", flush=True)
    try:
        await replica.run_replica(settings, stop=stop, on_leading=leading)
    except replica.ElectionError as e:
        print(f"k8sbridge run: {e}", file=sys.stderr, flush=True)
        return 2
    except replica.LeadershipLost as e:
        print(f"k8sbridge run: {e}", file=sys.stderr, flush=True)
        return replica.FENCED_EXIT
    except Exception as e:  # a component failed for good: say so, never hang
        log.error("the bridge stopped: %s", e, exc_info=True)
        print(f"k8sbridge run: the bridge stopped: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


CREDENTIALS_RETRY_INITIAL = 1.0  # seconds; doubling while the master refuses our credentials
CREDENTIALS_RETRY_MAX = 60.0


async def _credentials_accepted(
    settings: bridge_settings.BridgeSettings, *, stop: asyncio.Event
) -> bool:
    """Wait until the Mesos master accepts the bridge's credentials (a GET_VERSION with them);
    False if ``stop`` came first.

    Why before the bridge starts: with a wrong secret every part of the bridge fails on 401 and
    the whole process ends after its start timeout, only to be restarted and fail again (a
    crash loop whose log says "nodes did not become ready"). Here it says once, clearly, what
    is wrong (never the secret), then retries with back-off in this process until the master's
    credentials or ours are fixed; anything but a refusal (a master not up yet) is left to the
    bridge's own retries."""
    from k8sbridge.mesos import client as mesos_client
    from k8sbridge.mesos import errors as mesos_errors
    from k8sbridge.mesos import operator as mesos_operator
    from k8sbridge.mesos import transport as mesos_transport

    m = settings.mesos
    secret = None if m.secret_file is None else m.secret_file.read_text(encoding="utf-8").strip()
    config = mesos_client.ClientConfig(masters=m.masters, principal=m.principal, secret=secret,
                                       ca_file=str(m.ca_file) if m.ca_file else None)
    probe = mesos_operator.OperatorClient(transport=mesos_transport.Transport(config=config))
    delay, refusals = CREDENTIALS_RETRY_INITIAL, 0
    try:
        while not stop.is_set():
            try:
                await probe.get_version()
                if refusals:
                    log.warning("the Mesos master accepts the bridge's credentials now "
                                "(after %d refusals)", refusals)
                return True
            except mesos_errors.OperatorError as e:
                cause = e.__cause__
                if not isinstance(cause, (mesos_errors.Unauthorized, mesos_errors.Forbidden)):
                    return True  # not a refusal: the bridge's own retries deal with it
                refusals += 1
                who = (f"principal {m.principal!r} with the secret in {m.secret_file}"
                       if m.principal else "no principal (mesos.principal is not set)")
                if refusals == 1:
                    log.error(
                        "the Mesos master refused the bridge's credentials (%s): %s; check "
                        "mesos.principal and mesos.secret_file against the master's "
                        "--credentials; retrying with back-off (%gs doubling to %gs)",
                        type(cause).__name__, who, delay, CREDENTIALS_RETRY_MAX)
                else:
                    log.warning("the Mesos master still refuses the bridge's credentials "
                                "(%s, refusal %d); next try in %gs", type(cause).__name__,
                                refusals, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, CREDENTIALS_RETRY_MAX)
        return False
    finally:
        await probe.close()


async def _first_set(*flags: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(flag.wait()) for flag in flags]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
