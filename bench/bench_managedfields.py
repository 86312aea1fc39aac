"""The cost of tracking managedFields on an update, as devkube does on every write.

Why: kube-apiserver records which manager changed which field on every create, update and
patch; devkube does the same (``managedfields.track_update``), and a 1,000-replica burst writes
each pod several times (binding, status). This times one update of a Deployment's pod (as
devkube stores it, with the entries its create left) both ways: flattening both objects
whole, and flattening only the fields that differ (``fieldsets.flatten_pair``, what
``track_update`` does). Pure, single process; prints medians of several runs.

    python bench/bench_managedfields.py [--runs 7] [--updates 2000]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from k8sbridge.devkube import fieldsets, kinds, managedfields

POD = {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}


def _pod() -> dict[str, Any]:
    container = {
        "name": "web", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 3600"],
        "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
        "env": [{"name": f"V{i}", "value": str(i)} for i in range(4)],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "volumeMounts": [{"name": "kube-api-access-x", "readOnly": True,
                          "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-7d4b9c-x2x9z", "generateName": "web-7d4b9c-",
                     "namespace": "default", "uid": "0" * 36, "resourceVersion": "1",
                     "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "web-7d4b9c", "uid": "1" * 36,
                                          "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"containers": [container], "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                 "serviceAccountName": "default", "schedulerName": "default-scheduler",
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 300}],
                 "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [
                     {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}]},
        "status": {"phase": "Pending", "qosClass": "Burstable"}}


def _running(pod: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(pod)
    new["metadata"]["resourceVersion"] = "2"
    new["status"] = {"phase": "Running", "podIP": "10.88.0.7", "hostIP": "127.0.0.2",
                     "conditions": [{"type": t, "status": "True"} for t in
                                    ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
                     "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                            "state": {"running": {"startedAt": "now"}}}]}
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--updates", type=int, default=2000)
    args = parser.parse_args()
    kind = kinds.by_kind(api_version="v1", kind="Pod")
    assert kind is not None
    created = _pod()
    managedfields.track_update(kind=kind, old=None, new=created, manager=managedfields.Manager(
        name="kube-controller-manager", api_version="v1"))
    status = managedfields.Manager(name="k8sbridge", api_version="v1", subresource="status")
    updated = _running(created)
    schema = managedfields._schema(kind)
    assert schema is not None
    whole_ms, pair_ms, track_ms = [], [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        for _ in range(args.updates):
            fieldsets.compare(fieldsets.flatten(created, schema, maps=True),
                              fieldsets.flatten(updated, schema, maps=True))
        whole_ms.append((time.perf_counter() - t) * 1000 / args.updates)
        t = time.perf_counter()
        for _ in range(args.updates):
            fieldsets.compare(*fieldsets.flatten_pair(created, updated, schema, maps=True))
        pair_ms.append((time.perf_counter() - t) * 1000 / args.updates)
        news = [_running(created) for _ in range(args.updates)]
        t = time.perf_counter()
        for new in news:
            managedfields.track_update(kind=kind, old=created, new=new, manager=status)
        track_ms.append((time.perf_counter() - t) * 1000 / args.updates)
    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}; load average {load:.2f}; {args.runs} runs of "
          f"{args.updates} pod status updates")
    w, p = statistics.median(whole_ms), statistics.median(pair_ms)
    print(f"diff, both pods flattened whole:   median {w:.3f} ms")
    print(f"diff, differing fields only:       median {p:.3f} ms  ({w / p:.1f}x less)")
    print(f"track_update (diff + entries):     median {statistics.median(track_ms):.3f} ms")


if __name__ == "__main__":
    main()
