"""Any JSON at all: parse_pod returns a PodRequest or raises PodSpecError, nothing else."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.model import pods

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False)
    | st.sampled_from(["", "1", "500m", "1Gi", "-1", "x", "In", "Exists", "Gt", "TCP", "Always"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "key", "operator", "values", "value", "effect",
                                       "cpu", "memory", "nvidia.com/gpu", "hostPort",
                                       "containerPort", "requests", "limits", "matchExpressions",
                                       "nodeSelectorTerms", "topologyKey", "labelSelector",
                                       "tolerationSeconds", "matchLabels", "matchFields"]),
                      children, max_size=4),
    max_leaves=12,
)

containers = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["a", "b", ""]) | json_values},
        optional={"image": json_values, "resources": json_values | st.fixed_dictionaries(
            {}, optional={"requests": json_values, "limits": json_values}), "ports": json_values,
            "restartPolicy": json_values},
    ),
    max_size=3,
)

specs = st.fixed_dictionaries(
    {"containers": containers | json_values},
    optional={
        "initContainers": containers | json_values,
        "nodeSelector": json_values,
        "tolerations": json_values,
        "affinity": json_values | st.fixed_dictionaries({}, optional={
            "nodeAffinity": st.fixed_dictionaries({}, optional={
                "requiredDuringSchedulingIgnoredDuringExecution": json_values}),
            "podAntiAffinity": st.fixed_dictionaries({}, optional={
                "requiredDuringSchedulingIgnoredDuringExecution": json_values}),
        }),
        "restartPolicy": json_values,
        "terminationGracePeriodSeconds": json_values,
        "priority": json_values,
        "schedulerName": json_values,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({"metadata": st.fixed_dictionaries(
    {"name": st.just("p")}, optional={"labels": json_values, "namespace": json_values}),
    "spec": specs}) | json_values)
def test_parse_pod_never_fails_with_anything_but_pod_spec_error(raw: Any) -> None:
    try:
        request = pods.parse_pod(raw)
    except pods.PodSpecError:
        return
    assert request.containers and request.key.endswith("/p")
    assert all(v >= 0 for _, v in request.scalars)
