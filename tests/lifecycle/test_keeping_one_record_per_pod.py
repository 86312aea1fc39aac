"""One record per pod (``lifecycle.store``): the launch side and the status side of a pod's
life in one ``PodRecord``, kept only while something is known about it."""

from __future__ import annotations

import dataclasses

from k8sbridge.lifecycle import launches, store
from k8sbridge.lifecycle.record import PodRecord
from k8sbridge.model import ids


def _launch(uid: str, attempt: int = 0) -> launches.PodLaunch:
    return launches.PodLaunch(uid=uid, attempt=attempt, agent_id=ids.AgentId("a1"),
                              node_name="n1", task_ids=(ids.TaskId(f"{uid}.{attempt}.app"),))


def test_a_pod_about_which_nothing_is_known_has_no_entry() -> None:
    lives = store.PodStore()
    lives.launched(_launch("u1"))
    lives.set_phase_attempt("u1", 2)
    lives.launch_ended("u1")
    assert len(lives) == 1 and lives.phase_attempt("u1") == 2
    lives.set_phase_attempt("u1", None)
    assert len(lives) == 0 and lives.get("u1") == launches.LaunchLife()


def test_launches_list_in_the_order_pods_launched() -> None:
    lives = store.PodStore()
    lives.relaunch("u2", 5.0, sidecars_only=False)
    lives.launched(_launch("u1"))
    lives.launched(_launch("u2"))
    lives.launched(_launch("u1", attempt=1))  # a new attempt keeps its place
    assert [(uid, la.attempt) for uid, la in lives.launches()] == [("u1", 1), ("u2", 0)]
    assert lives.relaunch_dues() == [5.0]


def test_due_relaunches_are_taken_once_earliest_first() -> None:
    lives = store.PodStore()
    lives.relaunch("late", 3.0, sidecars_only=False)
    lives.relaunch("early", 1.0, sidecars_only=True)
    lives.relaunch("future", 9.0, sidecars_only=False)
    assert lives.take_due_relaunches(5.0) == [("early", True), ("late", False)]
    assert lives.take_due_relaunches(5.0) == []
    assert lives.relaunch_dues() == [9.0]
    assert len(lives) == 1


def test_deletion_is_kept_until_the_pod_is_forgotten() -> None:
    lives = store.PodStore()
    lives.launched(_launch("u1"))
    lives.start_deleting("u1")
    lives.launch_ended("u1")
    assert lives.deleting("u1") and lives.being_deleted() == ["u1"]
    lives.forget("u1")
    assert not lives.deleting("u1") and len(lives) == 0


def test_init_phases_of_one_attempt_share_its_number() -> None:
    lives = store.PodStore()
    assert lives.attempt_to_launch("u1", init_phase=True, next_attempt=0) == 0
    assert lives.attempt_to_launch("u1", init_phase=True, next_attempt=1) == 0
    assert lives.attempt_to_launch("u1", init_phase=False, next_attempt=1) == 1
    assert lives.phase_attempt("u1") is None and len(lives) == 0


def test_a_due_relaunch_is_stale_anew_or_beside_the_apps() -> None:
    assert launches.relaunch_step(sidecars_only=False, others_live=True) == "stale"
    assert launches.relaunch_step(sidecars_only=False, others_live=False) == "anew"
    assert launches.relaunch_step(sidecars_only=True, others_live=False) == "anew"
    assert launches.relaunch_step(sidecars_only=True, others_live=True) == "beside"


def _pod(uid: str) -> dict[str, object]:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


def test_the_status_side_and_the_launch_side_are_one_record() -> None:
    lives = store.PodStore()
    lives.launched(_launch("u1"))
    record = lives.start_status("u1", PodRecord.new(_pod("u1")))
    assert record.facts.name == "u1" and record.launch_side.launch == _launch("u1")
    lives.set_record("u1", dataclasses.replace(record, node_name="n1"))
    lives.start_deleting("u1")
    assert lives.record("u1").node_name == "n1" and lives.record("u1").launch_side.deleting
    lives.forget("u1")  # the launch side is over; the status side stays
    assert lives.record("u1").node_name == "n1" and len(lives) == 1
    lives.forget_status("u1")
    assert len(lives) == 0


def test_the_launch_side_outlives_the_status_side() -> None:
    lives = store.PodStore()
    lives.start_status("u1", PodRecord.new(_pod("u1")))
    lives.launched(_launch("u1"))
    lives.forget_status("u1")
    assert lives.launch("u1") == _launch("u1") and lives.record("u1").facts.name == ""
    assert lives.start_status("u1", PodRecord.new(_pod("u1"))).launch_side.launch is not None
