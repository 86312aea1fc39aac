"""``k8sbridge proxy``: the service proxy as a process of its own.

Why a process of its own: it is optional. ``k8sbridge run`` starts it as a supervised child in
the embedded cluster network's namespace; on a real cluster it runs on each Mesos agent host
whose network has no kube-proxy (it needs root, for nft, and a kubeconfig that may list and
watch Services and EndpointSlices). Ctrl-C / SIGTERM remove its table and stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["parse_node", "register"]

log = logging.getLogger(__name__)

READY_LINE = "k8sbridge proxy ready: table ip {table}{where}, {count} Services"


def parse_node(text: str) -> tuple[str, str]:
    """``NAME`` or ``NAME=CIDR`` (see ``rules.Node``)."""
    name, _, cidr = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=CIDR, not {text!r}")
    if cidr:
        try:
            cidr = str(ipaddress.IPv4Network(cidr, strict=False))
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {e}") from e
    return name, cidr


def _cidr(text: str) -> str:
    if not text:
        return ""  # the default: none (argparse converts a string default too)
    try:
        return str(ipaddress.IPv4Network(text, strict=False))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from e


def _on_off(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")
    return value == "on"


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "proxy", help="the service proxy (kube-proxy's nftables mode) for a network without one",
        description=(
            "Program ClusterIP and NodePort Services (to their ready endpoints) as nftables "
            "rules, in 'table ip kube-proxy', with the nft tool, as kube-proxy's nftables mode "
            "does; remove the table on exit. Needs root."),
    )
    parser.add_argument("--kubeconfig", type=Path, default=None,
                        help="kubeconfig (default: in-cluster credentials, else $KUBECONFIG)")
    parser.add_argument("--context", default=None, help="kubeconfig context")
    parser.add_argument("--netns", default="", metavar="NAME|PATH",
                        help="network namespace to program (default: this process's own)")
    parser.add_argument("--node", action="append", type=parse_node, default=None,
                        metavar="NAME[=CIDR]",
                        help="a node this proxy serves (repeatable; default: this host's name). "
                        "With CIDR (one proxy for several nodes, as in the embedded cluster "
                        "network): sources in CIDR are that node's pods, and NodePort traffic "
                        "to the CIDR's first address arrived at that node (for the Local "
                        "traffic policies)")
    parser.add_argument("--masquerade-all", type=_on_off, default=False, metavar="on|off",
                        help="masquerade all Service traffic (kube-proxy's --masquerade-all; "
                        "needed when pods on one bridge reach each other through a Service "
                        "and br_netfilter is off; default off)")
    parser.add_argument("--cluster-cidr", type=_cidr, default="", metavar="CIDR",
                        help="masquerade Service traffic from outside this range")
    parser.add_argument("--table", default="kube-proxy", help="the nftables table (ip family)")
    parser.add_argument("--nft", default="nft", help="the nft binary (for listings, and for "
                        "commits with --nft-library '')")
    parser.add_argument("--nft-library", default="libnftables.so.1", metavar="LIB",
                        help="nftables' library, which commits the rules in one long-lived "
                        "context ('': run the nft binary for each commit)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    import socket

    from k8sbridge.proxy import nft, rules

    nodes = args.node or [(socket.gethostname().lower(), "")]
    config = rules.ProxyConfig(
        nodes=tuple(rules.Node(name=name, cidr=cidr) for name, cidr in nodes),
        masquerade_all=args.masquerade_all, cluster_cidr=args.cluster_cidr, table=args.table)
    tool = nft.Nft(netns=args.netns, binary=args.nft, library=args.nft_library)
    try:
        return asyncio.run(_serve(config=config, tool=tool, kubeconfig=args.kubeconfig,
                                  context=args.context))
    except KeyboardInterrupt:
        return 130


async def _serve(*, config: Any, tool: Any, kubeconfig: Path | None, context: str | None) -> int:
    from k8sbridge.kube import client as kube_client
    from k8sbridge.kube import errors as kube_errors
    from k8sbridge.kube import listwatch
    from k8sbridge.proxy import proxier

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        kube = kube_client.KubeClient.from_kubeconfig(path=kubeconfig, context=context)
    except kube_errors.ConfigError as e:
        print(f"k8sbridge proxy: {e}", file=sys.stderr)
        return 2
    proxy = proxier.Proxier(config=config, tool=tool)
    listed = asyncio.Event()
    seen: set[str] = set()

    def lister(what: str, replace: Any) -> Any:
        def done(items: list[dict[str, Any]]) -> None:
            replace(items)
            seen.add(what)
            if len(seen) == 2:
                listed.set()
        return done

    watches = [
        asyncio.create_task(listwatch.run(
            kube, "/api/v1/services", replace=lister("services", proxy.replace_services),
            update=proxy.update_service, stop=stop)),
        asyncio.create_task(listwatch.run(
            kube, "/apis/discovery.k8s.io/v1/endpointslices",
            replace=lister("slices", proxy.replace_slices), update=proxy.update_slice,
            stop=stop)),
    ]
    ready = asyncio.Event()
    where = f" in {tool.netns_path}" if tool.netns else ""

    async def announce() -> None:
        await ready.wait()
        print(READY_LINE.format(table=config.table, where=where, count=len(proxy.services)),
              flush=True)

    announcer = asyncio.create_task(announce())
    try:
        await proxy.run(watches=watches, listed=listed, stop=stop, ready=ready)
    except Exception as e:  # say why, never hang
        log.error("the proxy stopped: %s", e, exc_info=True)
        print(f"k8sbridge proxy: stopped: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        announcer.cancel()
        await kube.close()
    return 0
