"""Stage timestamps along a pod's path, for ``bench/bench_startup_stages.py`` (bench only).

Why a ``sitecustomize``: the before/after comparison must time the same stages in two trees
whose classes differ (the agent was split into modules, the master too), without editing the
old tree. Put this directory on ``PYTHONPATH`` with ``BENCH_STAGE_TRACE=DIR`` and every Python
process of ``k8sbridge run`` appends ``[wall time, stage, key, value]`` lines to
``DIR/<pid>.jsonl`` from wrappers installed on the named methods when their module is imported
(a method missing from one tree is simply not traced). Without the variable it does nothing.

Stages: the bridge's scheduler sees a pod (``on_pod_event``), handles inbox items, runs a
placement pass, binds, ACCEPTs, REVIVEs/SUPPRESSes/DECLINEs; the kernel's master handles the
ACCEPT and allocates; an agent gets the RUN_TASK_GROUP, starts ``_launch``, writes checkpoints
(with their duration), asks the container daemon (``ExecutorClient.launch``), gets LAUNCHED
and sends each status update.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import inspect
import json
import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

_DIR = os.environ.get("BENCH_STAGE_TRACE")
_FD: list[int] = []


def emit(stage: str, key: Any = None, value: Any = None) -> None:
    if not _FD:
        assert _DIR is not None
        _FD.append(os.open(os.path.join(_DIR, f"{os.getpid()}.jsonl"),
                           os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    line = json.dumps([time.time(), stage, key, value], default=str) + "\n"
    os.write(_FD[0], line.encode())


Keys = Callable[..., Any]


def _task_uids(ops: Any) -> list[str]:
    out = []
    for op in ops or []:
        group = (op.get("launch_group") or {}).get("task_group") or {} if isinstance(op, dict) \
            else {}
        for task in group.get("tasks") or []:
            out.append(str((task.get("task_id") or {}).get("value", "")))
    return out


def _wrap(fn: Callable[..., Any], stage: str, keys: Keys, timed: bool) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            key = keys(*args, **kwargs)
            t0 = time.time()
            emit(stage, key)
            try:
                return await fn(*args, **kwargs)
            finally:
                if timed:
                    emit(stage + ":end", key, time.time() - t0)
        return awrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = keys(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if timed:
                emit(stage + ":end", key, time.perf_counter() - t0)
            else:
                emit(stage, key)
    return wrapper


def _pod_key(_self: Any, etype: Any, raw: Any, *_a: Any, **_k: Any) -> Any:
    meta = (raw or {}).get("metadata") or {}
    return [meta.get("uid"), meta.get("name"), etype, bool((raw.get("spec") or {}).get("nodeName"))]


def _handle_key(_self: Any, kind: str, item: Any, *_a: Any, **_k: Any) -> Any:
    if kind == "pod":
        meta = (item[1] or {}).get("metadata") or {}
        return ["pod", meta.get("uid")]
    name = type(item).__name__
    if name == "Offers":
        return ["Offers", [getattr(o, "agent_id", None) for o in item.offers]]
    if name == "Update":
        return ["Update", str(item.status.task_id), str(item.status.state)]
    return [kind, name]


def _accept_key(_self: Any, offer_ids: Sequence[Any], operations: Any, *_a: Any,
                **_k: Any) -> Any:
    return _task_uids(operations)


def _master_accept_key(_self: Any, _fw: Any, body: Any, *_a: Any, **_k: Any) -> Any:
    accept = (body or {}).get("accept") or body or {}  # the call, or its ``accept`` part
    return _task_uids(accept.get("operations"))


def _group_key(_self: Any, _fw: Any, _executor: Any, tasks: Any, *_a: Any, **_k: Any) -> Any:
    return [str((t.get("task_id") or {}).get("value", "")) for t in tasks or []]


def _container_key(_self: Any, container: Any, *_a: Any, **_k: Any) -> Any:
    return [container.container_id, list(container.tasks)]


def _client_key(self: Any, *_a: Any, **_k: Any) -> Any:
    return self.container_id


def _event_key(_self: Any, container: Any, event: Any, *_a: Any, **_k: Any) -> Any:
    return [container.container_id, event.get("type"), event.get("task_id")]


def _update_key(_self: Any, _container: Any, task: Any, state: str, *_a: Any, **_k: Any) -> Any:
    return [task.task_id, state]


def _name_key(_self: Any, *_a: Any, **kwargs: Any) -> Any:
    return kwargs.get("name")


def _none(*_a: Any, **_k: Any) -> Any:
    return None


# module -> [(method, stage, key function, timed)]; every class of the module defining the
# method gets the wrapper.
TARGETS: dict[str, list[tuple[str, str, Keys, bool]]] = {
    "k8sbridge.scheduler.loop": [
        ("on_pod_event", "bridge.pod_event", _pod_key, False),
        ("_handle", "bridge.handle", _handle_key, True),
        ("_pass", "bridge.pass", _none, True),
        ("_commit_agent", "bridge.commit_agent", _none, True),
        ("_maybe_revive", "bridge.maybe_revive", _none, False),
    ],
    "k8sbridge.scheduler.loop_passes": [
        ("_pass", "bridge.pass", _none, True),
    ],
    "k8sbridge.scheduler.loop_state": [
        ("_maybe_revive", "bridge.maybe_revive", _none, False),
    ],
    "k8sbridge.kube.client": [
        ("bind_pod", "bridge.bind", _name_key, True),
    ],
    "k8sbridge.mesos.framework": [
        ("accept", "bridge.accept", _accept_key, True),
        ("revive", "bridge.revive", _none, True),
        ("suppress", "bridge.suppress", _none, True),
        ("decline", "bridge.decline", _none, True),
    ],
    "k8sbridge.kernel.master.master": [
        ("accept", "master.accept", _master_accept_key, True),
        ("allocate", "master.allocate", _none, True),
    ],
    "k8sbridge.kernel.master.offers": [
        ("accept", "master.accept", _master_accept_key, True),
        ("allocate", "master.allocate", _none, True),
    ],
    "k8sbridge.kernel.agent.agent": [
        ("_run_task_group", "agent.run_task_group", _group_key, True),
        ("_launch", "agent.launch_coro", _container_key, True),
        ("_write_checkpoint", "agent.checkpoint", _container_key, True),
        ("_on_executor_event", "agent.executor_event", _event_key, True),
        ("_update", "agent.update", _update_key, True),
    ],
    "k8sbridge.kernel.agent.launching": [
        ("_run_task_group", "agent.run_task_group", _group_key, True),
        ("_launch", "agent.launch_coro", _container_key, True),
    ],
    "k8sbridge.kernel.agent.core": [
        ("_write_checkpoint", "agent.checkpoint", _container_key, True),
        ("_update", "agent.update", _update_key, True),
    ],
    "k8sbridge.kernel.agent.running": [
        ("_on_executor_event", "agent.executor_event", _event_key, True),
    ],
    "k8sbridge.kernel.agent.containers": [
        ("launch", "agent.daemon_launch", _client_key, True),
    ],
}


def _patch(module: types.ModuleType) -> None:
    for method, stage, keys, timed in TARGETS.get(module.__name__, []):
        for value in list(vars(module).values()):
            if (isinstance(value, type) and value.__module__ == module.__name__
                    and method in vars(value)):
                setattr(value, method, _wrap(vars(value)[method], stage, keys, timed))


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._inner.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


if _DIR:
    sys.meta_path.insert(0, _Finder())
