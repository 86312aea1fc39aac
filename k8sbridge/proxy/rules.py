"""Services and their endpoints → kube-proxy's nftables ruleset (pure), as full text or as the
difference between two rulesets.

Why kube-proxy's layout (``pkg/proxy/nftables/proxier.go``): one ``table ip kube-proxy``; a
verdict map ``service-ips`` (cluster IP . protocol . port → ``goto service-…``) and
``service-nodeports`` (protocol . port → ``goto external-…``) looked up from the nat hooks; a
``service-…`` chain per Service port balancing with ``numgen random mod N vmap`` over one
``endpoint-…`` chain per endpoint (which DNATs; but see the departure below);
``no-endpoint-services`` / ``no-endpoint-nodeports`` maps in filter hooks that ``reject`` (ICMP
port unreachable: the client gets "connection refused" at once) a Service with no endpoints,
or ``drop`` one whose traffic policy is Local and that has no endpoint here; a ``cluster-ips``
set rejecting ports a cluster IP does not serve; ``sessionAffinity: ClientIP`` as one dynamic
set per endpoint with a timeout (``update @affinity-… { ip saddr }`` in the endpoint chain,
``ip saddr @affinity-… goto endpoint-…`` in the service chain); masquerade as a mark
(``mark-for-masquerade``) that ``masquerading`` turns into ``masquerade`` in postrouting.

One departure for speed: per-endpoint chains only where a rule must follow the chosen
endpoint, that is for ``sessionAffinity: ClientIP`` (the endpoint chain records the client) and
for a NodePort with ``externalTrafficPolicy: Local`` (the client's address is kept, so the
endpoint chain masquerades a pod reaching itself). Every other Service chain picks and DNATs in
one rule, ``meta l4proto tcp dnat ip to numgen random mod N map { 0 : addr . port, … }``, and
its hairpin traffic (a pod sent to itself) is masqueraded in postrouting by a lookup of
``ct original ip daddr . ip saddr . ip daddr`` in the ``hairpin-endpoints`` set, which holds
``cluster IP . endpoint . endpoint`` for each such Service's endpoints (kube-proxy does it with
``ip saddr <endpoint> jump mark-for-masquerade`` in each endpoint chain). Why: Debian's nft
(1.0.6) reads every chain of the namespace into its cache for each transaction that adds a
rule or an element, and the kernel's generation counter moves with each commit, so the cache
cannot be kept between commits; at 1,000 Services × 10 endpoints kube-proxy's layout has
12,015 chains and that read was most of each commit (``bench/bench_proxy.py``); this one has a
chain per Service port (two with a NodePort).

Departures, each for a network with no br_netfilter: the check of unused cluster-IP ports runs
in prerouting right after DNAT (priority -90), as a cluster IP has no route there and the packet
would otherwise be dropped by routing before any forward hook; ``masquerade_all`` (kube-proxy's
``--masquerade-all``) is how a pod reaching a Service whose endpoint is on its own bridge gets
its replies: without it they would be bridged straight back to the client, never passing this
namespace's conntrack to be un-DNATed.

Nodes and locality: a proxy serves one node (``Node`` without a CIDR: every source is local and
NodePorts answer on every local address), or, in the embedded cluster network where one
namespace routes every agent's bridge, several nodes, each with its pod CIDR: a source in a
node's CIDR is that node's pod (``internalTrafficPolicy: Local``), and NodePort traffic to the
node's gateway address (the CIDR's first address) arrived at that node (``externalTrafficPolicy:
Local``).

Chain names are kube-proxy's: an 8-character base32 SHA-256 prefix, then ``ns/name/proto/port``
(and ``__ip/port`` for endpoints), so a chain's name changes only when what it is for changes.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence

from k8sbridge.proxy import model

__all__ = ["DEFAULT_TABLE", "Node", "ProxyConfig", "Ruleset", "delete_table_text", "diff_many",
           "diff_text", "full_text", "merge", "render"]

DEFAULT_TABLE = "kube-proxy"
MASQ_MARK = "0x4000"
REJECT = "goto reject-chain"
DROP = "drop"
MAPS = {  # name → its type
    "service-ips": "ipv4_addr . inet_proto . inet_service : verdict",
    "service-nodeports": "inet_proto . inet_service : verdict",
    "no-endpoint-services": "ipv4_addr . inet_proto . inet_service : verdict",
    "no-endpoint-nodeports": "inet_proto . inet_service : verdict",
}
SETS = {"cluster-ips": "ipv4_addr",
        "hairpin-endpoints": "ipv4_addr . ipv4_addr . ipv4_addr"}  # cluster IP . client . endpoint
BASE_CHAINS = (  # name, hook, priority (numbers: dstnat is -100, srcnat 100)
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-prerouting-post-dnat", "filter", "prerouting", -90),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
STATIC_RULES = (
    ("filter-prerouting", "ct state new jump service-endpoints-check"),
    ("filter-prerouting", "ct state new jump nodeport-endpoints-check"),
    ("filter-output", "ct state new jump service-endpoints-check"),
    ("filter-output", "ct state new jump nodeport-endpoints-check"),
    ("filter-prerouting-post-dnat", "ct state new jump cluster-ips-check"),
    ("filter-output-post-dnat", "ct state new jump cluster-ips-check"),
    ("nat-prerouting", "jump services"),
    ("nat-output", "jump services"),
    ("nat-postrouting", "ct original ip daddr . ip saddr . ip daddr @hairpin-endpoints "
                        "jump mark-for-masquerade"),
    ("nat-postrouting", "jump masquerading"),
    ("service-endpoints-check", "ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
    ("nodeport-endpoints-check", "fib daddr type local ip daddr != 127.0.0.0/8 "
                                 "meta l4proto . th dport vmap @no-endpoint-nodeports"),
    ("cluster-ips-check", "ip daddr @cluster-ips reject"),
    ("mark-for-masquerade", f"mark set mark or {MASQ_MARK}"),
    ("masquerading", f"mark and {MASQ_MARK} == 0 return"),
    ("masquerading", f"mark set mark xor {MASQ_MARK}"),
    ("masquerading", "masquerade fully-random"),
    ("services", "ip daddr . meta l4proto . th dport vmap @service-ips"),
    ("services", "fib daddr type local ip daddr != 127.0.0.0/8 "
                 "meta l4proto . th dport vmap @service-nodeports"),
    ("reject-chain", "reject"),
)
REGULAR_CHAINS = ("service-endpoints-check", "nodeport-endpoints-check", "cluster-ips-check",
                  "mark-for-masquerade", "masquerading", "services", "reject-chain")


@dataclasses.dataclass(frozen=True, slots=True)
class Node:
    """A node this proxy serves: its name (Endpoints' ``nodeName``) and, when one proxy serves
    several nodes, its pod CIDR (see the module docstring)."""

    name: str
    cidr: str = ""

    @property
    def address(self) -> str:
        """The node's address as its pods see it (its CIDR's gateway), "" without a CIDR."""
        if not self.cidr:
            return ""
        return str(ipaddress.ip_network(self.cidr, strict=False).network_address + 1)


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyConfig:
    nodes: tuple[Node, ...] = ()
    masquerade_all: bool = False
    cluster_cidr: str = ""  # sources outside it are masqueraded (kube-proxy's --cluster-cidr)
    table: str = DEFAULT_TABLE


@dataclasses.dataclass(frozen=True, slots=True)
class Ruleset:
    """The per-Service part of the table: chains (name → rules), affinity sets (name →
    timeout seconds) and the elements of the maps and sets (name → key → verdict, "" in a
    set)."""

    chains: dict[str, tuple[str, ...]]
    affinity: dict[str, int]
    elements: dict[str, dict[str, str]]


def _hash8(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def _balance(prefix: str, endpoints: Sequence[tuple[str, str]]) -> list[str]:
    """Rules choosing one of ``endpoints`` ((chain, affinity set or "")) by jumping to its
    chain: a client with an affinity entry goes back to its endpoint, any other to a random
    one."""
    rules = [f"{prefix}ip saddr @{aff} goto {chain}" for chain, aff in endpoints if aff]
    choices = ", ".join(f"{i} : goto {chain}" for i, (chain, _) in enumerate(endpoints))
    rules.append(f"{prefix}numgen random mod {len(endpoints)} vmap {{ {choices} }}")
    return rules


def _balance_direct(prefix: str, proto: str, endpoints: Sequence[model.Endpoint]) -> list[str]:
    """The rule choosing one of ``endpoints`` at random and DNATing to it, with no chain per
    endpoint (see the module docstring)."""
    choices = ", ".join(f"{i} : {ep.ip} . {ep.port}" for i, ep in enumerate(endpoints))
    return [f"{prefix}meta l4proto {proto} dnat ip to numgen random mod {len(endpoints)} "
            f"map {{ {choices} }}"]


def _pick(prefix: str, proto: str, endpoints: Sequence[model.Endpoint],
          chains: dict[model.Endpoint, tuple[str, str]]) -> list[str]:
    """Balancing over ``endpoints`` through their ``chains`` if they have some, else direct."""
    if chains:
        return _balance(prefix, [chains[ep] for ep in endpoints])
    return _balance_direct(prefix, proto, endpoints)


def render(ports: Iterable[tuple[model.ServicePort, Sequence[model.Endpoint]]],
           config: ProxyConfig) -> Ruleset:
    """The Service part of the ruleset for ``ports`` and the endpoints serving each."""
    chains: dict[str, tuple[str, ...]] = {}
    affinity: dict[str, int] = {}
    elements: dict[str, dict[str, str]] = {name: {} for name in (*MAPS, *SETS)}
    node_names = {n.name for n in config.nodes}
    for sp, endpoints in ports:
        proto = sp.protocol.lower()
        base = f"{_hash8(sp.key)}-{sp.key}"
        svc_chain = f"service-{base}"
        # per-endpoint chains only where a rule must follow the chosen endpoint
        chained = bool(sp.affinity_seconds) or (bool(sp.node_port) and sp.external_local)
        ep_chains: dict[model.Endpoint, tuple[str, str]] = {}
        for ep in endpoints if chained else ():
            ep_base = f"{_hash8(f'{sp.key}{ep.ip}:{ep.port}')}-{sp.key}__{ep.ip}/{ep.port}"
            chain, aff = f"endpoint-{ep_base}", ""
            rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]  # hairpin
            if sp.affinity_seconds:
                aff = f"affinity-{sp.affinity_seconds}s-{ep_base}"  # a new timeout: a new set
                affinity[aff] = sp.affinity_seconds
                rules.append(f"update @{aff} {{ ip saddr }}")
            rules.append(f"meta l4proto {proto} dnat to {ep.ip}:{ep.port}")
            chains[chain] = tuple(rules)
            ep_chains[ep] = (chain, aff)
        per_node = [(n, [ep for ep in endpoints if ep.node == n.name]) for n in config.nodes]
        per_node = [(n, eps) for n, eps in per_node if eps]
        local_any = any(ep.node in node_names for ep in endpoints)
        ip_key = f"{sp.cluster_ip} . {proto} . {sp.port}"
        elements["cluster-ips"][sp.cluster_ip] = ""
        if not chained:  # hairpin: masqueraded in postrouting when it went to the client
            elements["hairpin-endpoints"].update(
                (f"{sp.cluster_ip} . {ep.ip} . {ep.ip}", "") for ep in endpoints)
        if not endpoints:
            elements["no-endpoint-services"][ip_key] = REJECT
        elif sp.internal_local and not local_any:
            elements["no-endpoint-services"][ip_key] = DROP
        else:
            rules = []
            if config.masquerade_all:
                rules.append("jump mark-for-masquerade")
            elif config.cluster_cidr:
                rules.append(f"ip saddr != {config.cluster_cidr} jump mark-for-masquerade")
            if sp.internal_local:
                for node, eps in per_node:
                    rules += _pick(f"ip saddr {node.cidr} " if node.cidr else "", proto, eps,
                                   ep_chains)
                rules.append(DROP)
            else:
                rules += _pick("", proto, endpoints, ep_chains)
            chains[svc_chain] = tuple(rules)
            elements["service-ips"][ip_key] = f"goto {svc_chain}"
        if not sp.node_port:
            continue
        np_key = f"{proto} . {sp.node_port}"
        if not endpoints:
            elements["no-endpoint-nodeports"][np_key] = REJECT
            continue
        if sp.external_local and not local_any:
            elements["no-endpoint-nodeports"][np_key] = DROP
            continue
        ext_chain = f"external-{base}"
        # NodePort traffic is external: internalTrafficPolicy does not apply to it, so the
        # service chain (which follows it) is used only when it balances over every endpoint
        cluster_wide = svc_chain in chains and not sp.internal_local
        if sp.external_local:  # the client's address is kept: no masquerade
            rules = ["fib saddr type local jump mark-for-masquerade"]  # the node's own
            rules += [f"fib saddr type local goto {svc_chain}"] if cluster_wide else \
                _pick("fib saddr type local ", proto, endpoints, ep_chains)
            for node, eps in per_node:
                rules += _pick(f"ip daddr {node.address} " if node.cidr else "", proto, eps,
                               ep_chains)
            rules.append(DROP)
        elif cluster_wide:
            rules = ["jump mark-for-masquerade", f"goto {svc_chain}"]
        else:
            rules = ["jump mark-for-masquerade", *_pick("", proto, endpoints, ep_chains)]
        chains[ext_chain] = tuple(rules)
        elements["service-nodeports"][np_key] = f"goto {ext_chain}"
    return Ruleset(chains=chains, affinity=affinity, elements=elements)


def _set_decl(table: str, name: str, timeout: int) -> str:
    return (f"add set ip {table} {name} {{ type ipv4_addr ; flags dynamic,timeout ; "
            f"timeout {timeout}s ; }}")


def _rule_lines(table: str, chain: str, rules: Iterable[str]) -> list[str]:
    return [f"add rule ip {table} {chain} {rule}" for rule in rules]


def _elements_lines(verb: str, table: str, name: str,
                    items: Iterable[tuple[str, str]]) -> list[str]:
    body = [f"{key} : {verdict}" if verdict and verb == "add" else key for key, verdict in items]
    if not body:
        return []
    return [f"{verb} element ip {table} {name} {{ {', '.join(body)} }}"]


def full_text(ruleset: Ruleset, config: ProxyConfig) -> str:
    """An ``nft -f`` transaction that replaces the whole table with ``ruleset``."""
    t = config.table
    lines = [f"add table ip {t}", f"delete table ip {t}", f"add table ip {t}"]
    for name, hook_type, hook, priority in BASE_CHAINS:
        lines.append(f"add chain ip {t} {name} {{ type {hook_type} hook {hook} priority "
                     f"{priority} ; policy accept ; }}")
    lines += [f"add chain ip {t} {name}" for name in REGULAR_CHAINS]
    lines += [f"add map ip {t} {name} {{ type {kind} ; }}" for name, kind in MAPS.items()]
    lines += [f"add set ip {t} {name} {{ type {kind} ; }}" for name, kind in SETS.items()]
    lines += [_set_decl(t, name, timeout) for name, timeout in ruleset.affinity.items()]
    lines += [f"add chain ip {t} {name}" for name in ruleset.chains]
    for chain, rule in STATIC_RULES:
        lines.append(f"add rule ip {t} {chain} {rule}")
    for name, rules in ruleset.chains.items():
        lines += _rule_lines(t, name, rules)
    for name, items in ruleset.elements.items():
        lines += _elements_lines("add", t, name, sorted(items.items()))
    return "\n".join(lines) + "\n"


def _removal_order(name: str) -> int:
    """Chains that jump come out before the chains they jump to."""
    return {"external": 0, "service": 1}.get(name.split("-", 1)[0], 2)


def diff_text(old: Ruleset, new: Ruleset, config: ProxyConfig) -> str:
    """An ``nft -f`` transaction turning the table holding ``old`` into one holding ``new``
    ("" when they are the same): new sets and chains, changed chains flushed and refilled, map
    elements removed and added, then chains and sets no longer used deleted (in that order,
    so nothing is deleted while something still refers to it)."""
    t = config.table
    lines = [_set_decl(t, name, timeout) for name, timeout in new.affinity.items()
             if name not in old.affinity]
    lines += [f"add chain ip {t} {name}" for name in new.chains if name not in old.chains]
    for name, rules in new.chains.items():
        before = old.chains.get(name)
        if before == rules:
            continue
        if before is not None:
            lines.append(f"flush chain ip {t} {name}")
        lines += _rule_lines(t, name, rules)
    for name, was in old.elements.items():
        items = new.elements.get(name, {})
        gone = sorted((k, v) for k, v in was.items() if items.get(k) != v)
        lines += _elements_lines("delete", t, name, gone)
    for name, items in new.elements.items():
        was = old.elements.get(name, {})
        lines += _elements_lines("add", t, name,
                                 sorted((k, v) for k, v in items.items() if was.get(k) != v))
    gone_chains = sorted((c for c in old.chains if c not in new.chains), key=_removal_order)
    lines += [f"delete chain ip {t} {name}" for name in gone_chains]
    lines += [f"delete set ip {t} {name}" for name in old.affinity if name not in new.affinity]
    return "\n".join(lines) + "\n" if lines else ""


def merge(parts: Iterable[Ruleset]) -> Ruleset:
    """One ruleset holding every part (the parts of live Services never share a chain, set or
    element: chains and sets are named after their Service, and the API server gives a cluster
    IP or a NodePort to one Service at a time)."""
    out = Ruleset(chains={}, affinity={}, elements={})
    for part in parts:
        out.chains.update(part.chains)
        out.affinity.update(part.affinity)
        for name, items in part.elements.items():
            out.elements.setdefault(name, {}).update(items)
    return out


def diff_many(changes: Iterable[tuple[Ruleset, Ruleset]], config: ProxyConfig) -> str:
    """One transaction for several Services' changes (old, new): the old parts merged diffed
    against the new parts merged. Why not their diffs one after the other: a cluster IP, a
    NodePort or a hairpin entry one Service gives up can go to another in the same sync (a
    Service deleted and created again under another name, two swapping NodePorts), and then
    one Service's diff would delete an element the other's had added, or add a map key the
    other had not yet deleted, which nft refuses. Diffed by key, an element that stays is not
    touched and one whose verdict changes is deleted before it is added."""
    pairs = list(changes)
    return diff_text(merge(old for old, _ in pairs), merge(new for _, new in pairs), config)


def delete_table_text(config: ProxyConfig) -> str:
    """A transaction removing the table (and nothing else) whether or not it exists."""
    return f"add table ip {config.table}\ndelete table ip {config.table}\n"
