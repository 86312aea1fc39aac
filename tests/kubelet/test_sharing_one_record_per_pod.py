"""The status writer and the offer loop keep one record per pod in one store
(``lifecycle.store.PodStore``): what the writer decides and what the loop launched are read
from the same ``PodRecord``."""

from __future__ import annotations

from typing import Any

from k8sbridge.kubelet import pods as kubelet_pods
from k8sbridge.lifecycle import launches, store
from k8sbridge.model import ids, tasks

UID = "u1"
POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "default", "uid": UID},
    "spec": {"nodeName": "n", "containers": [{"name": "app", "image": "busybox"}]},
}
LAUNCH = launches.PodLaunch(uid=UID, attempt=0, agent_id=ids.AgentId("a1"), node_name="n",
                            task_ids=(ids.TaskId(f"{UID}.0.app"),))


def test_the_writer_and_the_loop_read_and_write_one_record() -> None:
    lives = store.PodStore()
    relaunches: list[Any] = []
    writer = kubelet_pods.PodStatusWriter(
        kube=None,  # type: ignore[arg-type]  # nothing is written here
        relaunch=lambda uid, delay, containers: relaunches.append(uid), lives=lives,
    )
    lives.launched(LAUNCH)  # (the loop launched attempt 0)
    for state in ("TASK_RUNNING", "TASK_FAILED"):
        writer.task_status(
            pod=POD, container="app", attempt=0, agent=None, ack=None,
            status=tasks.TaskStatusView(task_id=LAUNCH.task_ids[0], state=state,
                                        timestamp=1e9),
        )
    record = lives.record(UID)
    assert record.launch_side.launch == LAUNCH  # what the loop recorded is kept
    assert record.runtimes["app"].restart_count == 0 and relaunches == [UID]
    assert writer._state[UID].record is record
    lives.launch_ended(UID)
    writer.forget(UID)
    assert len(lives) == 0
