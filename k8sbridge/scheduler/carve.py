"""The carve: a placed pod's resources taken out of its agent's pool, and the ``Assignment``.

Why a module of its own: it is the part of the pass that turns a decision (this pod, this
agent) into the pieces the launch needs, and it knows nothing of how the agent was chosen.
Pods with one placement signature form a ``Group`` (``stack``); the group keeps its needs in
integer thousandths (executor overhead once per pod, each steady container, what its init
containers need on top) and what its carves produced, so identical pods carved from
identical pools share their pieces, bags and allocations instead of rebuilding them.
"""

from __future__ import annotations

from collections.abc import Sequence

from k8sbridge.model import cluster, ids, pods
from k8sbridge.model import resources as res
from k8sbridge.scheduler import feasible, plan, select, topology

__all__ = ["Group", "assign", "container_need", "give", "replay", "steady", "take"]


class Group:
    """Pods with one placement signature: their candidates and precomputed carve lists."""

    __slots__ = ("queue", "static", "need", "ports", "explanation", "overhead", "steady",
                 "reserve", "inits", "bags", "allocations", "fast", "scan", "anti",
                 "matching", "terms")

    def __init__(self) -> None:
        self.queue: select.CandidateQueue | None = None
        self.scan: topology.ScannedGroup | None = None  # topology constraints: by class
        self.anti = False  # required anti-affinity, its own or another pod's, may refuse it
        self.terms = False  # the pods have pod affinity terms of their own (any kind)
        # the ``topology`` trackers counting these pods (None: to be asked, as when a new
        # group registered trackers)
        self.matching: list[topology.Tracker] | None = None
        self.static: list[feasible.Rejection] = []
        self.need: list[tuple[str, int]] = []  # executor + pod, thousandths
        self.ports: list[tuple[int, str]] = []
        self.explanation: plan.Explanation | None = None
        self.overhead: list[tuple[str, int]] = []
        # per steady container (app containers and sidecars): its scalar needs
        self.steady: list[list[tuple[str, int]]] = []
        self.reserve: list[tuple[str, int]] = []  # what the init containers need on top
        self.inits: list[list[tuple[str, int]]] = []  # regular init containers
        # Identical pods carved from the same entries get identical pieces (feasible caches
        # them), so the Resources and allocations built from them are shared, not rebuilt.
        self.bags: dict[tuple[int, ...], res.Resources] = {}
        self.allocations: dict[tuple[object, ...], plan.ContainerAllocation] = {}
        # For a ``simple`` pool and a pod without host ports the whole carve is the same every
        # time, on every pool of the same signature (pieces are shared by the pools of the
        # pass): remember it per signature and replay it.
        self.fast: dict[int, plan.Assignment] = {}



class _Carver:
    """Splits resources already carved for a pod among its init containers."""

    def __init__(self, items: Sequence[res.Resource]) -> None:
        self._pool = feasible.Pool(
            role=None,
            offers=[
                cluster.OfferView(
                    id=ids.OfferId(""), agent_id=ids.AgentId(""), resources=res.Resources.of(items)
                )
            ],
        )

    def take(self, need: Sequence[tuple[str, int]]) -> res.Resources:
        out: list[res.Resource] = []
        for name, milli in need:
            milli = min(milli, self._pool.free.get(name, 0))
            if milli > 0:
                out.extend(self._pool.carve_scalar(name, milli))
        return res.Resources(tuple(out))


def container_need(container: pods.ContainerRequest) -> list[tuple[str, int]]:
    return [(n, feasible.to_milli(v)) for n, v in container.requests if v > 0]


def steady(pod: pods.PodRequest) -> list[pods.ContainerRequest]:
    """Containers that hold resources while the pod runs: app containers and sidecars."""
    return [*pod.containers, *(c for c in pod.init_containers if c.sidecar)]


def _carve(pool: feasible.Pool, need: Sequence[tuple[str, int]]) -> list[res.Resource]:
    items: list[res.Resource] = []
    for name, milli in need:
        items.extend(pool.carve_scalar(name, milli))
    return items


def _bag(group: Group, items: list[res.Resource]) -> res.Resources:
    # the pieces are kept alive by their pool entries, so their ids are stable for the pass
    key = tuple(map(id, items))
    bag = group.bags.get(key)
    if bag is None:
        bag = group.bags[key] = res.Resources(tuple(items))
    return bag


def assign(
    pod: pods.PodRequest,
    agent: feasible.AgentState,
    pool: feasible.Pool,
    group: Group,
) -> plan.Assignment:
    if pool.simple and not group.ports:
        # pools of one signature (any agent's) yield the same pieces for this group's carve
        template = group.fast.get(pool.signature)
        if template is not None:
            take(pool, group.need)  # (the caller's fit check found room)
            return replay(pod, agent, pool, group, template)
        assignment = group.fast[pool.signature] = _carve_assignment(pod, agent, pool, group)
        return assignment
    return _carve_assignment(pod, agent, pool, group)


def take(pool: feasible.Pool, need: Sequence[tuple[str, int]]) -> str | None:
    """Take ``need`` out of a simple pool that has each of its scalars (one of the signature
    a group carved before, ``Group.fast``): the fit check and the carve's amounts in one
    walk. None when taken; else the first scalar that is short, and nothing is taken."""
    free = pool.free  # (a simple pool's amounts: ``feasible.Pool.simple``)
    for name, milli in need:
        left = free[name] - milli
        if left < 0:
            give(pool, need[:need.index((name, milli))])
            return name
        free[name] = left
    return None


def give(pool: feasible.Pool, need: Sequence[tuple[str, int]]) -> None:
    """Put back what ``take`` took (a dynamic check after the fit refused the agent)."""
    free = pool.free
    for name, milli in need:
        free[name] += milli


def replay(
    pod: pods.PodRequest,
    agent: feasible.AgentState,
    pool: feasible.Pool,
    group: Group,
    template: plan.Assignment,
) -> plan.Assignment:
    """The group's carve from a simple pool of ``template``'s signature (``Group.fast``),
    replayed on ``pool`` once ``take`` took ``group.need`` out of it: the one entry of each
    scalar gives the same pieces, so only who the pod is (and where) changes."""
    offer_ids = pool.offer_ids
    sources: tuple[ids.OfferId, ...]
    if len(offer_ids) == 1:
        sources = offer_ids
    else:
        taken = {pool.firsts[name].offer for name, _ in group.need}
        sources = tuple(o for o in offer_ids if o in taken)
    if template.pod_key == pod.key and template.offer_ids == offer_ids:
        return template
    pool.used = True
    t = template  # dataclasses.replace is several times slower on this hot path
    view = agent.view
    return plan.new_assignment(
        pod.key,
        pod.uid,
        view.agent_id,
        view.hostname,
        view.node_name,
        offer_ids,
        pool.role,
        t.executor,
        t.containers,
        t.init_containers,
        t.host_ports,
        t.reserve,
        sources,
    )


def _carve_assignment(
    pod: pods.PodRequest,
    agent: feasible.AgentState,
    pool: feasible.Pool,
    group: Group,
) -> plan.Assignment:
    pool.used = True
    pool.touched.clear()
    executor = _bag(group, _carve(pool, group.overhead))
    allocations: list[plan.ContainerAllocation] = []
    choices: list[plan.HostPortChoice] = []
    carved_ports: set[int] = set()  # Mesos ports have no protocol: 53/TCP and 53/UDP are one
    for container, need in zip(steady(pod), group.steady, strict=True):
        items = _carve(pool, need)
        if not container.host_ports:
            bag = _bag(group, items)
            key = (id(bag), container.name, container.limits, container.init)
            allocation = group.allocations.get(key)
            if allocation is None:
                allocation = group.allocations[key] = plan.ContainerAllocation(
                    name=container.name,
                    resources=bag,
                    limits=container.limits,
                    init=container.init,
                    sidecar=container.sidecar,
                )
            allocations.append(allocation)
            continue
        for hp in container.host_ports:
            if hp.host_port not in carved_ports:
                carved_ports.add(hp.host_port)
                items.append(pool.carve_port(hp.host_port))
            choices.append(
                plan.HostPortChoice(
                    container=container.name,
                    container_port=hp.container_port,
                    host_port=hp.host_port,
                    protocol=hp.protocol,
                )
            )
        allocations.append(
            plan.ContainerAllocation(
                name=container.name,
                resources=res.Resources(tuple(items)),
                limits=container.limits,
                init=container.init,
                sidecar=container.sidecar,
            )
        )
    reserve = _carve(pool, group.reserve) if group.reserve else []
    inits: list[plan.ContainerAllocation] = []
    if group.inits:
        # they run before the app containers, inside what the pod holds (sidecars included:
        # max(app + sidecars, init peak) always covers any one init container's request)
        held = [r for a in allocations for r in a.resources if r.type == "SCALAR"] + reserve
        regular = [c for c in pod.init_containers if not c.sidecar]
        for container, need in zip(regular, group.inits, strict=True):
            inits.append(
                plan.ContainerAllocation(
                    name=container.name,
                    resources=_Carver(held).take(need),
                    limits=container.limits,
                    init=True,
                )
            )
    view = agent.view
    return plan.Assignment(
        pod_key=pod.key,
        pod_uid=pod.uid,
        agent_id=view.agent_id,
        hostname=view.hostname,
        node_name=view.node_name,
        offer_ids=pool.offer_ids,
        allocation_role=pool.role,
        executor=executor,
        containers=tuple(a for a in allocations if not a.init),
        init_containers=_in_spec_order(pod, [*(a for a in allocations if a.init), *inits]),
        host_ports=tuple(choices),
        reserve=_bag(group, reserve),
        sources=(
            pool.offer_ids if len(pool.offer_ids) == 1
            else tuple(o for o in pool.offer_ids if o in pool.touched)
        ),
    )


def _in_spec_order(
    pod: pods.PodRequest, allocations: list[plan.ContainerAllocation]
) -> tuple[plan.ContainerAllocation, ...]:
    if len(allocations) < 2:
        return tuple(allocations)
    by_name = {a.name: a for a in allocations}
    return tuple(by_name[c.name] for c in pod.init_containers)

