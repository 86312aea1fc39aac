"""``k8sbridge dns``: the cluster DNS server as a process of its own.

Why a process: it is optional in production (a cluster that has CoreDNS needs none of it), it
runs where the pods' network is (the embedded cluster's namespace, or any Mesos agent host of a
real cluster), and a flood of queries cannot slow the bridge. ``k8sbridge run`` starts it as a
supervised child; it prints ``k8sbridge dns serving ...`` once it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when the command runs: ``k8sbridge --help`` stays light
    from k8sbridge.dns import listen, server, sources

__all__ = ["READY_LINE", "register", "upstreams_from_resolv_conf"]

log = logging.getLogger(__name__)

READY_LINE = "k8sbridge dns serving"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dns", help="serve cluster DNS: Kubernetes Service names and Mesos task names",
        description="Cluster DNS: the Kubernetes DNS-based service discovery specification "
        "(1.1.0) for the cluster domain, Mesos-DNS names for every running Mesos task, every "
        "other name forwarded to upstream resolvers.")
    p.add_argument("--listen", action="append", default=None, metavar="IP",
                   help="address to serve on (repeatable; default 127.0.0.1)")
    p.add_argument("--port", type=int, default=53, help="UDP and TCP port (53)")
    p.add_argument("--listen-netns", type=Path, default=None, metavar="PATH",
                   help="serve inside the network namespace at PATH (/run/netns/NAME)")
    p.add_argument("--add-addresses", action="store_true",
                   help="put a listen address that is missing on the namespace's loopback")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="kubeconfig (default: in-cluster credentials, else $KUBECONFIG)")
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.add_argument("--no-kubernetes", action="store_true",
                   help="serve no cluster domain (Mesos names and forwarding only)")
    p.add_argument("--cluster-domain", default="cluster.local", metavar="DOMAIN")
    p.add_argument("--master", default=None, metavar="URL",
                   help="Mesos master URL(s), comma-separated: serve Mesos-DNS names")
    p.add_argument("--mesos-principal", default=None)
    p.add_argument("--mesos-secret-file", type=Path, default=None)
    p.add_argument("--mesos-ca-file", type=Path, default=None)
    p.add_argument("--mesos-domain", default="mesos", metavar="DOMAIN")
    p.add_argument("--mesos-poll-seconds", type=float, default=2.0,
                   help="GET_STATE poll interval, used only when the master refuses the "
                   "operator API's SUBSCRIBE (Mesos names follow its event stream otherwise)")
    p.add_argument("--upstream", action="append", default=None, metavar="IP[:PORT]",
                   help="resolver for other names (repeatable; default: the nameservers "
                   "of --resolv-conf)")
    p.add_argument("--resolv-conf", type=Path, default=Path("/etc/resolv.conf"))
    p.add_argument("--service", default=None, metavar="NAMESPACE/NAME",
                   help="create this Service (e.g. kube-system/kube-dns) with --service-ip "
                   "as its clusterIP and an EndpointSlice naming --service-endpoint")
    p.add_argument("--service-ip", default=None, metavar="IP")
    p.add_argument("--service-endpoint", default=None, metavar="IP",
                   help="the EndpointSlice's address (default: the first --listen)")
    p.set_defaults(func=_run)


def _upstream(text: str) -> server.Upstream:
    from k8sbridge.dns import server

    host, port = text, 53
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    return server.Upstream(host=host, port=port)


def upstreams_from_resolv_conf(path: Path) -> list[server.Upstream]:
    """The ``nameserver`` lines of a resolv.conf (none when it cannot be read)."""
    from k8sbridge.dns import server

    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    out.append(server.Upstream(host=str(ipaddress.ip_address(parts[1]))))
    return out


def _run(args: argparse.Namespace) -> int:
    from k8sbridge.dns import listen

    try:
        ups = [_upstream(u) for u in args.upstream] if args.upstream else \
            upstreams_from_resolv_conf(args.resolv_conf)
        hosts = args.listen or ["127.0.0.1"]
        for h in hosts:
            ipaddress.ip_address(h)
    except ValueError as e:
        print(f"k8sbridge dns: {e}", file=sys.stderr)
        return 2
    if args.service and (not args.service_ip or "/" not in args.service):
        print("k8sbridge dns: --service needs NAMESPACE/NAME and --service-ip", file=sys.stderr)
        return 2
    listening = set(hosts)
    ups = [u for u in ups if not (u.host in listening and u.port == args.port)]  # no loops
    try:
        socks = listen.bind_all(hosts, port=args.port, netns=args.listen_netns,
                                add_addresses=args.add_addresses)
    except OSError as e:
        print(f"k8sbridge dns: {e.strerror or e}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(args, socks=socks, upstreams=ups, hosts=hosts))
    except KeyboardInterrupt:
        return 130


async def _serve(args: argparse.Namespace, *, socks: listen.Sockets,
                 upstreams: list[server.Upstream], hosts: list[str]) -> int:
    from k8sbridge.dns import publish, server, sources
    from k8sbridge.kube import client as kube_client
    from k8sbridge.kube import errors as kube_errors

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    cluster_source = None if args.no_kubernetes else sources.ClusterSource(
        domain=args.cluster_domain)
    mesos_source = _mesos_source(args)

    current = [sources.Zones()]

    def zones() -> sources.Zones:
        """The same object until a source rebuilt its table (the server's answer cache lives
        as long as it does)."""
        now = current[0]
        records = cluster_source.records if cluster_source is not None else None
        table = mesos_source.table if mesos_source is not None else None
        if now.cluster is not records or now.mesos is not table:
            now = current[0] = sources.Zones(cluster=records, mesos=table)
        return now

    dns_server = server.Server(zones=zones, upstreams=upstreams)
    kube = None
    tasks: list[asyncio.Task[None]] = []
    try:
        if cluster_source is not None:
            kube = kube_client.KubeClient.from_kubeconfig(path=args.kubeconfig,
                                                          context=args.context)
            watched = asyncio.Event()
            tasks.append(asyncio.create_task(cluster_source.run(kube=kube, stop=stop,
                                                                ready=watched)))
            await _first(watched.wait(), stop.wait(), *tasks)  # listed, records built
            if args.service:
                namespace, name = args.service.split("/", 1)
                try:
                    await publish.ensure_service(
                        kube=kube, namespace=namespace, name=name, cluster_ip=args.service_ip,
                        endpoint=args.service_endpoint or hosts[0], port=args.port)
                except kube_errors.KubeError as e:  # the names are served all the same
                    log.error("could not publish the Service %s: %s", args.service, e)
        if mesos_source is not None:
            polled = asyncio.Event()
            tasks.append(asyncio.create_task(mesos_source.run(stop=stop, ready=polled)))
        served = asyncio.Event()
        tasks.append(asyncio.create_task(dns_server.serve(
            udp_socks=socks[0], tcp_socks=socks[1], stop=stop, ready=served)))
        await _first(served.wait(), stop.wait(), *tasks)
        where = ", ".join(f"{h}:{args.port}" for h in hosts)
        print(f"{READY_LINE} UDP and TCP on {where}"
              f"{' in ' + str(args.listen_netns) if args.listen_netns else ''}; upstreams: "
              f"{', '.join(f'{u.host}:{u.port}' for u in upstreams) or 'none'}", flush=True)
        await _first(stop.wait(), *tasks)
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        return 0
    finally:
        stop.set()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, timeout=10)
        if kube is not None:
            await kube.close()
        for s in socks[0] + socks[1]:
            s.close()


def _mesos_source(args: argparse.Namespace) -> sources.MesosSource | None:
    if not args.master:
        return None
    from k8sbridge.dns import sources
    from k8sbridge.mesos import operator as mesos_operator
    from k8sbridge.mesos import transport as mesos_transport

    secret = None
    if args.mesos_secret_file is not None:
        secret = args.mesos_secret_file.read_text(encoding="utf-8").strip()
    config = mesos_transport.ClientConfig(
        masters=tuple(m for m in args.master.split(",") if m.strip()),
        principal=args.mesos_principal, secret=secret,
        ca_file=str(args.mesos_ca_file) if args.mesos_ca_file else None)
    client = mesos_operator.OperatorClient(transport=mesos_transport.Transport(config=config))
    return sources.MesosSource(operator=client, domain=args.mesos_domain,
                               interval=args.mesos_poll_seconds)


async def _first(*waitables: Any) -> None:
    """Wait until one of ``waitables`` is done; the coroutines among them are cancelled then,
    the tasks (the components) are not."""
    mine = [asyncio.ensure_future(w) for w in waitables if not isinstance(w, asyncio.Future)]
    theirs = [w for w in waitables if isinstance(w, asyncio.Future)]
    try:
        await asyncio.wait([*mine, *theirs], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for f in mine:
            f.cancel()
