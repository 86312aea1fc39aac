"""The lifecycle reads any pod the API could hold without failing: malformed parts read as
absent (a bad pod must not cost the status writer or the offer loop an event)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from k8sbridge.lifecycle import events, machine
from k8sbridge.lifecycle.record import PodRecord, facts_of

_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.just(10**400), st.floats(),
                  st.text(max_size=6))
_json = st.recursive(_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["name", "image", "restartPolicy", "containers", "initContainers",
                     "restartCount", "startTime", "activeDeadlineSeconds", "uid",
                     "deletionTimestamp", "containerStatuses", "x"]), c, max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(metadata=_json, spec=_json, status=_json)
def test_any_pod_shape_reads_without_failing(metadata: Any, spec: Any, status: Any) -> None:
    raw = {"metadata": metadata, "spec": spec, "status": status}
    if not all(isinstance(v, dict) or v is None for v in raw.values()):
        raw = {k: v for k, v in raw.items() if isinstance(v, dict)}
    facts = facts_of(raw)
    assert isinstance(facts.apps, tuple) and isinstance(facts.inits, tuple)
    record, _ = machine.apply(PodRecord.new(raw), events.PodChanged(pod=raw), 0.0)
    assert record.facts == facts


def test_the_facts_of_a_well_formed_pod() -> None:
    facts = facts_of({
        "metadata": {"uid": "u", "name": "p", "namespace": "ns",
                     "deletionTimestamp": "2027-01-01T00:00:00Z"},
        "spec": {"restartPolicy": "OnFailure", "activeDeadlineSeconds": 30,
                 "initContainers": [{"name": "i"}, {"name": "s", "restartPolicy": "Always"}],
                 "containers": [{"name": "a", "image": "busybox"}]},
        "status": {"startTime": "2027-01-01T00:00:00Z",
                   "containerStatuses": [{"name": "a", "restartCount": 2}]},
    })
    assert (facts.uid, facts.name, facts.namespace) == ("u", "p", "ns")
    assert facts.restart_policy == "OnFailure" and facts.deleting
    assert facts.apps == ("a",) and facts.inits == ("i", "s") and facts.sidecars == {"s"}
    assert facts.image("a") == "busybox" and facts.carried_restarts == (("a", 2),)
    assert facts.active_deadline == 30.0 and facts.start_time == 1798761600.0
