"""Pods are kept compact: managedFields dropped, keys and short strings shared between pods,
the content otherwise unchanged."""

from __future__ import annotations

import json
from typing import Any

from k8sbridge.scheduler import loop_pods


def _decoded(name: str) -> dict[str, Any]:
    # each watch event is decoded afresh: nothing is shared between two pods
    return json.loads(json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "managedFields": [{"manager": "kubectl", "operation": "Update",
                                        "fieldsV1": {"f:spec": {}}}],
                     "annotations": {"note": "x" * 100}},
        "spec": {"restartPolicy": "Always", "priority": 0, "enableServiceLinks": True,
                 "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1"]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }))


def test_managed_fields_are_dropped_and_the_rest_is_equal() -> None:
    raw = _decoded("a")
    kept = loop_pods.compact_pod(raw)
    assert "managedFields" not in kept["metadata"]
    del raw["metadata"]["managedFields"]
    assert kept == raw
    assert "managedFields" in _decoded("a")["metadata"]  # the input is not changed


def test_two_pods_share_their_keys_and_common_values() -> None:
    a, b = loop_pods.compact_pod(_decoded("a")), loop_pods.compact_pod(_decoded("b"))
    key_a = next(k for k in a["spec"] if k == "restartPolicy")
    key_b = next(k for k in b["spec"] if k == "restartPolicy")
    assert key_a is key_b
    assert a["spec"]["restartPolicy"] is b["spec"]["restartPolicy"]
    assert a["spec"]["containers"][0]["image"] is b["spec"]["containers"][0]["image"]
    assert a["status"]["conditions"][0]["type"] is b["status"]["conditions"][0]["type"]
    # long strings are kept as they are; other values keep their types
    assert a["metadata"]["annotations"]["note"] == "x" * 100
    assert a["spec"]["priority"] == 0 and a["spec"]["enableServiceLinks"] is True


def test_a_newer_version_reuses_the_equal_parts_of_the_kept_one() -> None:
    kept = loop_pods.compact_pod(_decoded("a"))
    newer = _decoded("a")
    newer["metadata"]["resourceVersion"] = "7"
    newer["status"]["phase"] = "Succeeded"
    newer["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    again = loop_pods.compact_pod(newer, kept)
    del newer["metadata"]["managedFields"]
    assert again == newer  # the new content, whatever was reused
    assert again["spec"] is kept["spec"]  # unchanged: the kept one, not a rebuilt copy
    assert again["metadata"]["annotations"] is kept["metadata"]["annotations"]
    assert again["metadata"]["resourceVersion"] == "7"
    assert again["status"] is not kept["status"] and kept["status"]["phase"] == "Running"
    assert again["status"]["conditions"][0]["type"] is kept["status"]["conditions"][0]["type"]
    assert "resourceVersion" not in kept["metadata"]  # the kept version is not changed
