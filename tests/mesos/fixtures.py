"""Apache Mesos scheduler-API JSON, written from the exact shapes of the reference.

Each constant is what a real master (1.9+) sends: double-nested OFFERS, ``error.message``,
UPDATE with ``data`` and a base64 ``uuid``, FAILURE without ``executor_id``, and master output
that includes defaulted optional fields (``failover_timeout: 0.0``, ``checkpoint: false``,
``shell: true``).
"""

from __future__ import annotations

import base64
import json
import uuid as uuidlib
from typing import Any

from k8sbridge.mesos import recordio

FRAMEWORK_ID = "5a8b3c0e-1f2d-4e5f-9a6b-7c8d9e0f1a2b-0000"
AGENT_ID = "5a8b3c0e-1f2d-4e5f-9a6b-7c8d9e0f1a2b-S0"
MASTER_ID = "5a8b3c0e-1f2d-4e5f-9a6b-7c8d9e0f1a2b"
UUID_B64 = base64.b64encode(uuidlib.UUID("6b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e").bytes).decode()

SUBSCRIBED: dict[str, Any] = {
    "type": "SUBSCRIBED",
    "subscribed": {
        "framework_id": {"value": FRAMEWORK_ID},
        "heartbeat_interval_seconds": 15.0,
        "master_info": {
            "id": MASTER_ID,
            "ip": 16777343,
            "port": 5050,
            "pid": "master@127.0.0.1:5050",
            "hostname": "master-1",
            "version": "1.11.0",
            "address": {"hostname": "master-1", "ip": "127.0.0.1", "port": 5050},
            "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "QUOTA_V2"}],
        },
    },
}

HEARTBEAT: dict[str, Any] = {"type": "HEARTBEAT"}


def offer(n: int = 1, *, role: str = "k8s", refined: bool = True) -> dict[str, Any]:
    """One offer: unreserved cpus/mem/disk/ports plus a reserved cpus in either form."""
    reserved: dict[str, Any] = {
        "name": "cpus",
        "type": "SCALAR",
        "scalar": {"value": 1.0},
        "allocation_info": {"role": role},
    }
    if refined:
        reserved["reservations"] = [{"type": "STATIC", "role": role}]
    else:
        reserved["role"] = role
    return {
        "id": {"value": f"{MASTER_ID}-O{n}"},
        "framework_id": {"value": FRAMEWORK_ID},
        "agent_id": {"value": AGENT_ID},
        "hostname": "agent-1.example.com",
        "url": {
            "scheme": "http",
            "address": {"hostname": "agent-1.example.com", "ip": "10.0.0.11", "port": 5051},
            "path": "/slave(1)",
        },
        "domain": {"fault_domain": {"region": {"name": "eu-west"}, "zone": {"name": "eu-west-1a"}}},
        "allocation_info": {"role": role},
        "resources": [
            {
                "name": "cpus",
                "type": "SCALAR",
                "scalar": {"value": 3.5},
                "allocation_info": {"role": role},
                **({} if refined else {"role": "*"}),
            },
            {
                "name": "mem",
                "type": "SCALAR",
                "scalar": {"value": 7168.0},
                "allocation_info": {"role": role},
            },
            {
                "name": "disk",
                "type": "SCALAR",
                "scalar": {"value": 35840.0},
                "allocation_info": {"role": role},
            },
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 31000, "end": 32000}]},
                "allocation_info": {"role": role},
            },
            reserved,
        ],
        "attributes": [
            {"name": "rack", "type": "TEXT", "text": {"value": "r1"}},
            {"name": "level", "type": "SCALAR", "scalar": {"value": 10.0}},
            {"name": "keys", "type": "RANGES", "ranges": {"range": [{"begin": 1000, "end": 1500}]}},
        ],
        "executor_ids": [{"value": "exec-1"}],
    }


OFFERS: dict[str, Any] = {
    "type": "OFFERS",
    "offers": {"offers": [offer(1), offer(2, refined=False)]},
}

RESCIND: dict[str, Any] = {"type": "RESCIND", "rescind": {"offer_id": {"value": f"{MASTER_ID}-O1"}}}


def update(
        task_id: str = "pod-abc.web",
        *,
        state: str = "TASK_RUNNING",
        with_uuid: bool = True,
        source: str = "SOURCE_EXECUTOR",
        uuid: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "task_id": {"value": task_id},
        "state": state,
        "source": source,
        "agent_id": {"value": AGENT_ID},
        "executor_id": {"value": "pod-abc"},
        "timestamp": 1732569600.123456,
        "data": base64.b64encode(b"hello").decode(),
        "healthy": True,
        "container_status": {
            "container_id": {"value": "c1", "parent": {"value": "c0"}},
            "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": "10.0.0.5"}]}],
            "executor_pid": 4242,
        },
    }
    if with_uuid:
        status["uuid"] = uuid or UUID_B64
    else:
        status["reason"] = "REASON_RECONCILIATION"
        status["source"] = "SOURCE_MASTER"
    return {"type": "UPDATE", "update": {"status": status}}


MESSAGE: dict[str, Any] = {
    "type": "MESSAGE",
    "message": {
        "agent_id": {"value": AGENT_ID},
        "executor_id": {"value": "exec-1"},
        "data": base64.b64encode(b"\x00\x01binary").decode(),
    },
}

FAILURE_AGENT_LOST: dict[str, Any] = {
    "type": "FAILURE",
    "failure": {"agent_id": {"value": AGENT_ID}},
}

FAILURE_EXECUTOR: dict[str, Any] = {
    "type": "FAILURE",
    "failure": {"agent_id": {"value": AGENT_ID}, "executor_id": {"value": "exec-1"}, "status": 256},
}

ERROR: dict[str, Any] = {"type": "ERROR", "error": {"message": "Framework failed over"}}

INVERSE_OFFERS: dict[str, Any] = {
    "type": "INVERSE_OFFERS",
    "inverse_offers": {
        "inverse_offers": [
            {
                "id": {"value": f"{MASTER_ID}-O9"},
                "framework_id": {"value": FRAMEWORK_ID},
                "agent_id": {"value": AGENT_ID},
                "unavailability": {
                    "start": {"nanoseconds": 1732569600000000000},
                    "duration": {"nanoseconds": 3600000000000},
                },
            }
        ]
    },
}

RESCIND_INVERSE_OFFER: dict[str, Any] = {
    "type": "RESCIND_INVERSE_OFFER",
    "rescind_inverse_offer": {"inverse_offer_id": {"value": f"{MASTER_ID}-O9"}},
}

UPDATE_OPERATION_STATUS: dict[str, Any] = {
    "type": "UPDATE_OPERATION_STATUS",
    "update_operation_status": {
        "status": {
            "operation_id": {"value": "op-1"},
            "state": "OPERATION_FINISHED",
            "uuid": {"value": UUID_B64},
            "agent_id": {"value": AGENT_ID},
            "resource_provider_id": {"value": "rp-1"},
            "converted_resources": [],
        }
    },
}

# A framework as a master echoes it: every defaulted optional field is present.
LEGACY_FRAMEWORK_INFO: dict[str, Any] = {
    "user": "root",
    "name": "old-framework",
    "id": {"value": FRAMEWORK_ID},
    "failover_timeout": 0.0,
    "checkpoint": False,
    "role": "*",
    "hostname": "",
    "capabilities": [],
}

# A task as a master echoes it (shell defaults to true, extract defaults to true).
def frame(event: dict[str, Any]) -> bytes:
    return recordio.encode(json.dumps(event).encode())
