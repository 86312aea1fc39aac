"""devkube's CPU per pod of a replica burst, in-process: the registry, store and watch fan-out
work the API server does for each pod, without HTTP.

Why: in the embedded 1,000-replica burst devkube's CPU per pod decides how fast pods get to
Running on a busy 2-core box. Per pod this replays what the burst sends (bodies decoded from
bytes as the HTTP layer does): the ReplicaSet controller's create, the binding, three
merge-patches of pods/status from the bridge (Pending with conditions, Running, Ready), one
Event create; WATCHERS pod watchers and one event watcher get every change (drained after each
pod) and every request is counted in /metrics as the server counts it. Prints the process CPU
seconds per 1,000 pods (median and minimum of several runs; each run stores fresh pods; on a
loaded box the minimum moves least).

    python bench/bench_devkube_writes.py [--pods 1000] [--runs 5] [--watchers 4] [--profile N]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.devkube import (
    apimetrics,
    httpio,
    kinds,
    managedfields,
    registry,
    selectors,
    store,
    subresources,
    watch,
)

POD = kinds.BY_KEY[kinds.ResourceKey("/pods")]
EVENT = kinds.BY_KEY[kinds.ResourceKey("/events")]
NOW = "2026-12-07T16:00:00Z"


def _template(n: int) -> bytes:
    container = {
        "name": "web", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 3600"],
        "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
        "env": [{"name": f"V{i}", "value": str(i)} for i in range(4)],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-7d4b9c-", "namespace": "default",
                     "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "web-7d4b9c", "uid": "1" * 36,
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"containers": [container], "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "schedulerName": "default-scheduler"}}).encode()


def _statuses(n: int) -> list[bytes]:
    def cond(t: str, s: str) -> dict[str, Any]:
        return {"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": NOW}
    ip = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"
    waiting = {"name": "web", "ready": False, "restartCount": 0, "image": "busybox:1.36",
               "imageID": "", "started": False,
               "state": {"waiting": {"reason": "ContainerCreating"}}}
    running = dict(waiting, started=True, imageID="docker://busybox@sha256:abc",
                   containerID=f"mesos://{n}", state={"running": {"startedAt": NOW}})
    pending = {"phase": "Pending", "hostIP": "10.0.0.1", "startTime": NOW,
               "conditions": [cond("PodScheduled", "True"), cond("Initialized", "True"),
                              cond("ContainersReady", "False"), cond("Ready", "False")],
               "containerStatuses": [waiting]}
    up = dict(pending, phase="Running", podIP=ip, podIPs=[{"ip": ip}],
              containerStatuses=[running],
              conditions=[cond("PodScheduled", "True"), cond("Initialized", "True"),
                          cond("ContainersReady", "False"), cond("Ready", "False")])
    ready = dict(up, containerStatuses=[dict(running, ready=True)],
                 conditions=[cond("PodScheduled", "True"), cond("Initialized", "True"),
                             cond("ContainersReady", "True"), cond("Ready", "True")])
    return [json.dumps({"metadata": {"uid": "UID"}, "status": s}).encode()
            for s in (pending, up, ready)]


def _event(pod: str, n: int) -> bytes:
    return json.dumps({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"web-7d4b9c.{n:016x}", "namespace": "default"},
        "involvedObject": {"kind": "ReplicaSet", "namespace": "default", "name": "web-7d4b9c",
                           "uid": "1" * 36, "apiVersion": "apps/v1"},
        "reason": "SuccessfulCreate", "message": f"Created pod: {pod}", "type": "Normal",
        "source": {"component": "replicaset-controller"}, "count": 1,
        "firstTimestamp": NOW, "lastTimestamp": NOW}).encode()


def _watchers(st: store.Store, count: int) -> list[watch.Watcher]:
    everything = selectors.parse_fields(None, supported=frozenset())
    out = [watch.Watcher(store_key=POD.store_key, namespace=None if i % 2 else "default",
                         labels=selectors.parse_labels(None), fields=everything)
           for i in range(count)]
    out.append(watch.Watcher(store_key=EVENT.store_key, namespace=None,
                             labels=selectors.parse_labels(None), fields=everything))
    for w in out:
        st.subscribe(w, since=st.rv)
    return out


def _request(metrics: apimetrics.RequestMetrics, method: str, path: str, ctype: str,
             code: int) -> None:
    metrics.observe(method=method, path=path, query={}, content_type=ctype, code=code,
                    seconds=0.002)


def burst(pods: int, watchers: int) -> float:
    """CPU seconds for ``pods`` pods (setup excluded)."""
    reg = registry.Registry(store=store.Store())
    reg.bootstrap()
    metrics = apimetrics.RequestMetrics()
    open_watchers = _watchers(reg.store, watchers)
    template = _template(0)
    statuses = [_statuses(n) for n in range(pods)]
    events = [_event("web-7d4b9c-x", n) for n in range(pods)]
    rs = managedfields.Manager(name="kube-controller-manager", api_version="v1", time=NOW)
    bridge = managedfields.Manager(name="k8sbridge", api_version="v1", subresource="status",
                                   time=NOW)
    merge = "application/merge-patch+json"
    base = "/api/v1/namespaces/default/pods"
    start = time.process_time()
    for n in range(pods):
        body = httpio.decode(template, "application/json")
        created = reg.create(kind=POD, namespace="default", body=body, manager=rs)
        _request(metrics, "POST", base, "application/json", 201)
        name, uid = created["metadata"]["name"], created["metadata"]["uid"]
        subresources.bind(reg, namespace="default", name=name, body=httpio.decode(json.dumps({
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "agent-1"}}).encode(),
            "application/json"))
        _request(metrics, "POST", f"{base}/{name}/binding", "application/json", 201)
        reg.create(kind=EVENT, namespace="default", body=httpio.decode(
            events[n], "application/json"), manager=rs)
        _request(metrics, "POST", "/api/v1/namespaces/default/events", "application/json", 201)
        for raw in statuses[n]:
            reg.patch(kind=POD, namespace="default", name=name, content_type=merge,
                      body=httpio.decode(raw.replace(b"UID", uid.encode()), merge),
                      subresource="status", manager=bridge)
            _request(metrics, "PATCH", f"{base}/{name}/status", merge, 200)
        for w in open_watchers:
            w.take()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="instead: cProfile one run, print the top N functions")
    args = parser.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        burst(args.pods, args.watchers)
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)
        return
    per_1000 = [burst(args.pods, args.watchers) * 1000 / args.pods for _ in range(args.runs)]
    print(f"cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}; {args.runs} runs "
          f"of {args.pods} pods, {args.watchers} pod watchers + 1 event watcher")
    print(f"CPU seconds per 1000 pods: median {statistics.median(per_1000):.2f}, "
          f"min {min(per_1000):.2f} "
          f"(runs: {', '.join(f'{s:.2f}' for s in per_1000)})")


if __name__ == "__main__":
    main()
