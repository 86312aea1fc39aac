"""The framework loop: pending pods + held offers → pure placement → commit (bind, then ACCEPT).

Why one task: every decision here reads and writes the same state (held offers, pending pods,
launched task groups, suppression). ``Scheduler.run`` is the single owner of that state; pod
watch events, Mesos events and timers all arrive as items on one inbox queue, so there are no
locks and no interleaving surprises. Kubernetes writes and Mesos calls are awaited from here
(bounded by the kube client's connections), status writes are handed to the kubelet's writer.

Crash-safe commit order — **bind first, then ACCEPT**, with task ids derived from the pod uid
(``<uid>.<attempt>.<generation>.<container>``: ``lifecycle.taskids``):

* killed before the bind: the pod is still unbound, nothing runs; it is placed again.
* killed after the bind, before the ACCEPT: the pod is bound to node N and no task exists.
  After the restart the loop first *reconciles* (``GET_TASKS`` on the master, then an implicit
  RECONCILE) and only then launches: it finds no task for the pod's uid and launches it on N's
  agent (a pod bound to one of our nodes without a task is launched there, which is also how
  pods bound by another scheduler run). Nothing runs twice, nothing is lost.
* killed after the ACCEPT: the task exists under its deterministic id; reconciliation adopts
  it and the pod is never launched again for that attempt. Even a racing second launch of the
  same attempt would carry the same task ids, which the master refuses while the first lives.
  A launch after a restart carries the new generation: it never reuses an earlier id.

The opposite order (ACCEPT first) would leave a running task for an unbound pod after a crash;
recognising it is possible with the deterministic ids, but bind-first keeps the Kubernetes
object as the single record of intent, which is what other controllers read.

Attempts: one attempt of a pod is one task group on one agent. When the lifecycle decides a
restart (restartPolicy, crash back-off) the status writer asks for a relaunch; the pod becomes
pending again, bound to its node, and the next attempt's ids are ``attempt + 1``. Init
containers run before the app group as task groups of their own, one at a time, each on the
pod's node; the phase is derived from which init tasks have finished (a sidecar's phase ends
once it runs, and it keeps running beside what follows), so it survives a bridge restart.

Where the parts live (one class built up module by module, one owner of the state):
``loop_state`` (the tables and shared helpers), ``loop_pods`` (pod events, deletion),
``loop_reconcile`` (GET_TASKS, retries, attempts that ended while away), ``loop_updates``
(offers and task updates), ``loop_passes`` (placement passes, timers), and here the inbox, the
views and the commit. What happens to a pod (restarts, back-off, sidecars) is decided by the
pure ``k8sbridge/lifecycle``; the loop executes what it asks (``request_relaunch``,
``request_kill``). The launch side of each pod's life (the attempt launched now, when the next
may launch, the attempt whose init phases run, deletion) is part of the pod's one record
(``PodRecord.launch_side``, in the ``lifecycle.store.PodStore`` the loop shares with the status
writer): the loop records what it did there and reads it, and keeps
only execution bookkeeping of its own (held offers, the pending queue, the Mesos tasks by id,
timers, explanations, parsed requests).

Good citizenship: offers not used by the plan are declined at once with a refuse filter;
offers are never held longer than ``offer_hold_seconds`` (while some pods do not fit, offers
are kept at most ``GATHER_SECONDS`` so the explanation sees every agent); SUPPRESS when nothing
is pending; REVIVE (at most every ``revive_min_interval_seconds``) when something becomes
pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from k8sbridge.kube import errors as kube_errors
from k8sbridge.lifecycle import away, phases, taskids
from k8sbridge.mesos import errors as mesos_errors
from k8sbridge.model import ids
from k8sbridge.model import pods as model_pods
from k8sbridge.model.resources import Resources
from k8sbridge.scheduler import (
    launch,
    limits,
    loop_passes,
    loop_updates,
    plan,
    podfields,
    podfiles,
    podnet,
    serviceenv,
    volume_sources,
    volumes,
)
from k8sbridge.scheduler.loop_state import (
    RawPod,
    _is_sidecar,
    _node_name,
)
from k8sbridge.scheduler.ports import (
    AgentDirectory,
    AgentRef,
    Driver,
    PodLaunch,
    PodSink,
    TaskRecord,
)

__all__ = [
    "AgentDirectory",
    "AgentRef",
    "Driver",
    "PodLaunch",
    "PodSink",
    "Scheduler",
    "TaskRecord",
]

log = logging.getLogger(__name__)

# Pods of one commit whose volume sources (ConfigMaps, Secrets, tokens) are read at once.
FETCH_CONCURRENCY = 32


async def _settle(pending: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel the reads of pods the commit skipped and collect every outcome (none is left
    unretrieved)."""
    futures = list(pending)
    for future in futures:
        future.cancel()
    await asyncio.gather(*futures, return_exceptions=True)


class Scheduler(loop_passes.Passes):
    """The bridge's framework loop (a component: ``run(stop=, ready=)``)."""

    # -- inputs (called from other tasks; they only enqueue) --------------------------------

    def on_pod_event(self, etype: str | None, raw: RawPod) -> None:
        self._inbox.put_nowait(("pod", (etype, raw)))

    def on_service_event(self, etype: str | None, raw: RawPod) -> None:
        """The Service watch: the book is read only at launches (no pass to run)."""
        self._services.observe(etype, raw)

    def request_relaunch(
        self, uid: str, delay: float, *, containers: Sequence[str] = ()
    ) -> None:
        """The lifecycle decided a restart (restartPolicy, crash back-off) of ``containers``
        (the app group, an init container or a sidecar): relaunch later."""
        due = self._clock() + max(0.0, delay)
        self._inbox.put_nowait(("relaunch", (uid, due, tuple(containers))))

    def request_kill(self, uid: str, task_id: ids.TaskId) -> None:
        """The lifecycle decided a task must stop (a sidecar after the app containers)."""
        self._inbox.put_nowait(("kill", (uid, task_id)))

    # -- views for tests and the kubelet API -----------------------------------------------

    @property
    def launches(self) -> Mapping[str, PodLaunch]:
        return dict(self._lives.launches())

    @property
    def tasks(self) -> Mapping[ids.TaskId, TaskRecord]:
        return self._tasks

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(self._pending)

    @property
    def suppressed(self) -> bool:
        return self._suppressed

    @property
    def held_offers(self) -> int:
        return len(self._book)

    @property
    def reconciled(self) -> bool:
        return self._reconciled

    @property
    def running_update_delays(self) -> Sequence[float]:
        return tuple(self._running_delays)

    # -- the kubelet API's view (PodLocator) ------------------------------------------------

    @property
    def framework_id(self) -> str | None:
        return self._driver.framework_id

    def locate(
        self, *, namespace: str, name: str, container: str, previous: bool
    ) -> tuple[str, str, str, bool] | None:
        """(agent id, executor id, task id, finished) of a container's current/previous run."""
        for uid, pod in self._pods.items():
            meta = pod.get("metadata") or {}
            if meta.get("name") != name or (meta.get("namespace") or "default") != namespace:
                continue
            runs = sorted(
                (r for r in self._tasks.values() if r.pod_uid == uid and r.container == container),
                key=lambda r: r.attempt,
            )
            if previous:
                runs = runs[:-1]
            if not runs:
                return None
            rec = runs[-1]
            if rec.agent_id is None:
                return None
            executor = rec.executor_id or taskids.app_executor_of(str(rec.task_id)) or ""
            return str(rec.agent_id), executor, str(rec.task_id), rec.terminal
        return None

    def known_pods(self) -> list[dict[str, Any]]:
        return list(self._pods.values())

    def running_pods(self) -> list[dict[str, Any]]:
        return [p for uid, p in self._pods.items() if self._lives.launch(uid) is not None]

    # -- the component -----------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event, ready: asyncio.Event) -> None:
        await self._initial_pod_list()
        ready.set()
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                timeout = self._next_timeout()
                getter = asyncio.ensure_future(self._inbox.get())
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    kind, item = getter.result()
                    await self._handle(kind, item)
                    while not self._inbox.empty():  # drain what is there before a pass
                        # let the writers' tasks start in between: a burst queues hundreds
                        # of items, most handled without awaiting anything real
                        await asyncio.sleep(0)
                        kind, item = self._inbox.get_nowait()
                        await self._handle(kind, item)
                else:
                    getter.cancel()
                await self._tick()
        finally:
            stopper.cancel()
            for posting in list(self._posting):
                posting.cancel()

    def _next_timeout(self) -> float:
        now = self._clock()
        waits = [self._settings.mesos.offer_hold_seconds]
        waits.extend(due - now for due in self._lives.relaunch_dues())
        if self._pass_due is not None:
            waits.append(max(0.0, self._pass_due - now))
        if self._reconcile_due is not None:
            waits.append(max(0.0, self._reconcile_due - now))
        if self._unconfirmed:
            waits.append(max(0.0, min(d for _, d, _ in self._unconfirmed.values()) - now))
        kill_due = self._kills.next_due()
        if kill_due is not None:
            waits.append(max(0.0, kill_due - now))
        return max(0.01, min(waits))

    async def _handle(self, kind: str, item: Any) -> None:
        try:
            if kind == "pod":
                etype, raw = item
                self._observe_pod(etype, raw)
                await self._act_on_pod(str((raw.get("metadata") or {}).get("uid") or ""))
            elif kind == "mesos":
                if loop_updates.orders_updates(item):
                    self._mesos_queued -= 1
                await self._on_mesos(item)
            elif kind == "relaunch":
                uid, due, containers = item
                pod = self._pods.get(uid) or {}
                self._lives.relaunch(uid, due, sidecars_only=bool(containers) and all(
                    _is_sidecar(pod, c) for c in containers
                ))
            elif kind == "kill":
                await self._kill_for_lifecycle(*item)
            elif kind == "node":
                await self._on_node(*item)
        except (kube_errors.KubeError, mesos_errors.MesosError) as e:
            log.warning("handling %s failed (will retry on the next event): %s", kind, e)
        except Exception:  # one bad event must not stop the loop for every other pod
            log.exception("handling a %s event failed (bug): the loop continues", kind)

    # -- the commit (a pass's plan, per agent) ----------------------------------------------

    async def _commit_agent(
        self,
        agent_id: ids.AgentId,
        offer_ids: Sequence[ids.OfferId],
        assignments: Iterable[plan.Assignment],
    ) -> None:
        """Render each assignment's LAUNCH_GROUP (the plan is the commit: nothing is carved
        again) and send those that the offers still held contain; a pod whose offer is gone
        or short stays pending with a constant reason (PodScheduled=False, FailedScheduling)."""
        held = self._book.take(offer_ids)
        held_ids = {o.offer_id for o in held}
        available = Resources()
        for offer in held:
            available = available + offer.resources
        hostname = held[0].hostname if held else ""
        node_name = self._agents.node_for_agent(agent_id) or _node_name(hostname)
        agent_version = limits.parse_version(
            str(getattr(self._agents.agents.get(agent_id), "version", "") or "")
        )
        fid = self._driver.framework_id or ""
        # the IP of a pod on the agent's network (a pod on a CNI network gets its own, known
        # once the agent attached it: ``podnet``)
        pod_ip = self._agent_ref(agent_id).host_ip
        scheduling = self._settings.scheduler
        network = podfiles.Network(
            pod_ips=(pod_ip,) if pod_ip else (), cluster_dns=scheduling.cluster_dns,
            cluster_domain=scheduling.cluster_domain, enabled=scheduling.pod_files)
        operations: list[dict[str, Any]] = []
        bound: list[tuple[str, launch.LaunchGroup]] = []
        candidates: list[tuple[str, RawPod, launch.LaunchGroup]] = []

        def refused(uid: str, pod: RawPod, message: str) -> None:
            self._want_pass()  # it stays pending: the next offers place it again
            if self._unschedulable.get(uid) != message:
                self._unschedulable[uid] = message
                self._sink.unschedulable(pod=pod, message=message)

        assignments = list(assignments)
        fetches = self._prefetch(assignments)
        local_images = self._local_images()  # one listing for the pods launched together
        for assignment in assignments:
            uid = str(assignment.pod_uid)
            pod = self._pods.get(uid)
            if pod is None or self._lives.deleting(uid):
                continue
            if not held_ids.issuperset(assignment.sources or assignment.offer_ids):
                refused(uid, pod, launch.COMMIT_OFFER_GONE)
                continue
            try:
                request = self._request(uid, pod)
                joined = podnet.network_for(pod, request, setting=scheduling.pod_network)
                env = await self._resolve_env(
                    pod, node_name=node_name, host_ip=hostname,
                    pod_ip=podnet.ip_marker(uid) if joined is not None else None)
                sources = await fetches[uid] if uid in fetches else await volume_sources.fetch(
                    self._kube, pod)
                phase = self._init_phase(uid, request)
                attempt = self._lives.attempt_to_launch(
                    uid, init_phase=phase is not None, next_attempt=self._next_attempt(uid)
                )
                group = launch.render_launch_group(
                    pod=pod,
                    request=request,
                    assignment=assignment,
                    framework_id=fid,
                    env=env,
                    image_mode=self._settings.scheduler.image_mode,
                    generation=self._generation,
                    attempt=attempt,
                    init_phase=phase,
                    master_version=self.master_version,
                    agent_version=agent_version,
                    sources=sources,
                    local_images=local_images,
                    allow_host_path=self._settings.scheduler.allow_host_path,
                    run_as_users=podfields.parse_run_as_users(
                        self._settings.scheduler.run_as_users),
                    agent_capabilities=self._settings.scheduler.agent_capabilities,
                    node_name=node_name,
                    host_ip=hostname,
                    network=network,
                    pod_network=scheduling.pod_network,
                    sandbox=self._lives.sandbox(uid),
                    make_sandbox=self._settings.scheduler.pod_sandbox,
                )
            except launch.LaunchError as e:
                if e.reason == launch.REASON_STALE:
                    refused(uid, pod, str(e))
                    continue
                self._pending.pop(uid, None)
                self._sink.launch_failed(pod=pod, reason=e.reason, message=str(e))
                continue
            except model_pods.PodSpecError as e:
                self._pending.pop(uid, None)
                self._sink.launch_failed(pod=pod, reason="InvalidPodSpec", message=str(e))
                continue
            spec = pod.get("spec") or {}
            if spec.get("nodeName") and spec.get("nodeName") != node_name:
                continue
            if not available.contains(group.used):
                refused(uid, pod, launch.COMMIT_OFFER_SHORT)
                continue
            available = available - group.used
            candidates.append((uid, pod, group))
        await _settle(fetches.values())
        # Bind first (see the module docstring), all of this agent's pods concurrently; a pod
        # already bound to this node (restart, or bound by another scheduler) keeps its binding.
        results = await asyncio.gather(
            *(self._bind(pod, uid=uid, node_name=node_name) for uid, pod, _ in candidates),
            return_exceptions=True,
        )
        for (uid, _pod, group), result in zip(candidates, results, strict=True):
            if isinstance(result, kube_errors.Conflict | kube_errors.NotFound):
                log.info("not launching %s: binding failed: %s", uid, result)
                self._pending.pop(uid, None)  # the next watch event says where it went
                continue
            if isinstance(result, kube_errors.KubeError):
                log.warning("binding %s failed (retrying later): %s", uid, result)
                continue
            if isinstance(result, BaseException):
                raise result
            if group.sandbox_operation is not None:  # the pod's sandbox first (``podsandbox``)
                operations.append(group.sandbox_operation)
            operations.append(group.operation)
            bound.append((uid, group))
        if not operations:
            if held:
                await self._driver.decline([o.offer_id for o in held], refuse_seconds=1.0)
            return
        ended: list[tuple[str, ids.TaskId]] = []  # pods with a new sandbox
        for uid, group in bound:
            self._pending.pop(uid, None)
            self._unschedulable.pop(uid, None)
            self._pending_since.pop(uid, None)
            self._explained_at.pop(uid, None)
            first = launch.parse_task_id(group.task_ids[0])
            self._lives.launched(PodLaunch(
                uid=uid, attempt=first[1] if first else 0, agent_id=agent_id,
                node_name=node_name, task_ids=tuple(ids.TaskId(t) for t in group.task_ids),
            ))
            made = (group.sandbox.task_id,) if group.sandbox is not None else ()
            for tid in (*group.task_ids, *made):
                parsed = launch.parse_task_id(tid)
                assert parsed is not None
                self._tasks[ids.TaskId(tid)] = TaskRecord(
                    task_id=ids.TaskId(tid), pod_uid=uid, attempt=parsed[1],
                    container=parsed[2], agent_id=agent_id, executor_id=group.executor_id,
                )
            if group.sandbox is not None:
                self._lives.set_sandbox(uid, group.sandbox)
                ended.append((uid, group.sandbox.task_id))
        await self._driver.accept(
            [o.offer_id for o in held], operations, refuse_seconds=1.0
        )
        log.info("launched %d pod(s) on %s", len(operations), node_name)
        for uid, new_sandbox in ended:  # an earlier one (a restarted bridge cannot join it)
            await self._end_sandboxes(uid, why="its pod has a new sandbox", keep=new_sandbox)
        # the launches' notices (e.g. MissingClusterDNS) are posted without holding up this
        # pass: in a burst a commit waited for hundreds of best-effort event POSTs, which queue
        # behind the status writes, before the next agent's launches went out
        for uid, group in bound:
            pod = self._pods.get(uid)
            if pod is None:
                continue
            for n in group.notices:
                posting = asyncio.create_task(self._kube.post_event(
                    involved=pod, reason=n.reason, message=n.message, type_="Warning",
                    host=node_name))
                self._posting.add(posting)
                posting.add_done_callback(self._posting.discard)

    async def _bind(self, pod: RawPod, *, uid: str, node_name: str) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName"):
            return
        meta = pod.get("metadata") or {}
        await self._kube.bind_pod(
            namespace=str(meta.get("namespace") or "default"),
            name=str(meta.get("name")),
            uid=uid,
            node=node_name,
        )
        self._sink.scheduled(pod=pod, node_name=node_name)

    def _local_images(self) -> frozenset[str]:
        """``repository:tag`` of the archives in the local image directory (image_mode
        ``local``; read at each commit, so an archive added later is used)."""
        directory = self._settings.scheduler.image_dir
        if self._settings.scheduler.image_mode != "local" or directory is None:
            return frozenset()
        try:
            return frozenset(p.name[:-4] for p in directory.iterdir() if p.name.endswith(".tar"))
        except OSError:
            return frozenset()

    def _init_phase(self, uid: str, request: model_pods.PodRequest) -> int | None:
        """Index of the first init container that has not finished yet (None: app group)."""
        if not request.init_containers:
            return None
        finished = {
            r.container for r in self._tasks.values()
            if r.pod_uid == uid and r.state == "TASK_FINISHED"
        }
        running = {
            r.container for r in self._tasks.values()
            if r.pod_uid == uid and r.state in ("TASK_RUNNING", "TASK_KILLING")
        }
        return phases.next_init(
            inits=[(init.name, init.sidecar) for init in request.init_containers],
            finished=finished, running=running,
        )

    def _next_attempt(self, uid: str) -> int:
        """Past every attempt known: the tasks we know and what the pod's status names (the
        master may have forgotten earlier tasks; the generation in the ids keeps them unique
        regardless, this keeps the attempts of one pod growing)."""
        attempts = [r.attempt for r in self._tasks.values() if r.pod_uid == uid]
        attempts += away.written_attempts(uid, self._pods.get(uid) or {})
        return max(attempts) + 1 if attempts else 0

    def _prefetch(
        self, assignments: Sequence[plan.Assignment]
    ) -> dict[str, asyncio.Future[volumes.Sources]]:
        """Start reading every assigned pod's volume sources at once (bounded, one read per
        ConfigMap/Secret for all of them): rendered one after another, a 1,000-pod commit
        would otherwise wait for its pods' reads and token requests in turn."""
        reads = volume_sources.Reads(self._kube)
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def fetch(pod: RawPod) -> volumes.Sources:
            async with gate:
                return await volume_sources.fetch(self._kube, pod, reads)

        out: dict[str, asyncio.Future[volumes.Sources]] = {}
        for assignment in assignments:
            uid = str(assignment.pod_uid)
            pod = self._pods.get(uid)
            if pod is not None and uid not in out and not self._lives.deleting(uid):
                out[uid] = asyncio.ensure_future(fetch(pod))
        return out

    async def _resolve_env(
        self, pod: RawPod, *, node_name: str, host_ip: str, pod_ip: str | None
    ) -> dict[str, list[tuple[str, str]]]:
        async def config_map(ns: str, name: str) -> Mapping[str, Any] | None:
            try:
                return await self._kube.get_config_map(ns, name)
            except kube_errors.NotFound:
                return None

        async def secret(ns: str, name: str) -> Mapping[str, Any] | None:
            try:
                return await self._kube.get_secret(ns, name)
            except kube_errors.NotFound:
                return None

        spec = pod.get("spec") or {}
        scheduling = self._settings.scheduler
        services = serviceenv.pod_service_env(
            await self._service_snapshot(),
            namespace=str((pod.get("metadata") or {}).get("namespace") or "default"),
            enable_links=spec.get("enableServiceLinks") is not False,
            api_host=scheduling.api_service_host, api_port=scheduling.api_service_port)
        out: dict[str, list[tuple[str, str]]] = {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            out[str(container.get("name"))] = await launch.resolve_env(
                pod=pod, container=container, node_name=node_name, host_ip=host_ip,
                config_map=config_map, secret=secret, pod_ip=pod_ip, services=services,
            )
        return out

    async def _service_snapshot(self) -> tuple[Mapping[str, Any], ...]:
        """The Services as the watch keeps them; listed once first (as a kubelet waits for
        its Service informer's first listing); while that fails the pod waits with the
        kubelet's reason and is placed again."""
        if not self._services.synced:
            self._services.begin_listing()
            try:
                listing = await self._kube.get("/api/v1/services")
            except kube_errors.KubeError as e:
                self._services.abandon_listing()
                # the pod stays pending with this message and is placed again
                raise launch.LaunchError(f"{serviceenv.NOT_SYNCED}: {e}",
                                         reason=launch.REASON_STALE) from e
            self._services.replace(listing.get("items") or [])
        return self._services.snapshot()
