"""Raw v1 scheduler calls and events (``scheduler/scheduler.proto``) as ``TypedDict``s.

Why apart from ``raw.py``: that module holds the shared ``mesos.proto`` messages (resources,
framework, tasks, offers, operations) that the operator API uses too; this one holds only the
scheduler API's envelopes (``Call`` and ``Event``), the JSON the framework sends and reads.
"""

from __future__ import annotations

from typing import Literal, Required, TypeAlias, TypedDict

from k8sbridge.mesos.raw import (
    RawFilters,
    RawFrameworkInfo,
    RawId,
    RawInverseOffers,
    RawKillPolicy,
    RawMasterInfo,
    RawOfferConstraints,
    RawOffers,
    RawOperation,
    RawOperationStatus,
    RawResource,
)
from k8sbridge.model.tasks import RawTaskStatus

# --------------------------------------------------------------------------------------------
# Scheduler calls (mesos.v1.scheduler.Call)

CallType: TypeAlias = Literal[
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "REVIVE",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "MESSAGE",
    "REQUEST",
    "SUPPRESS",
    "UPDATE_FRAMEWORK",
]


class RawSubscribe(TypedDict, total=False):
    framework_info: Required[RawFrameworkInfo]
    suppressed_roles: list[str]
    offer_constraints: RawOfferConstraints


class RawAccept(TypedDict, total=False):
    offer_ids: Required[list[RawId]]
    operations: list[RawOperation]
    filters: RawFilters


class RawDecline(TypedDict, total=False):
    offer_ids: Required[list[RawId]]
    filters: RawFilters


class RawAcceptInverseOffers(TypedDict, total=False):
    inverse_offer_ids: Required[list[RawId]]
    filters: RawFilters


class RawRoles(TypedDict, total=False):
    """REVIVE and SUPPRESS: ``roles`` (omitted = every role of the framework)."""

    roles: list[str]


class RawKill(TypedDict, total=False):
    task_id: Required[RawId]
    agent_id: RawId
    kill_policy: RawKillPolicy


class RawShutdown(TypedDict):
    executor_id: RawId
    agent_id: RawId


class RawAcknowledge(TypedDict):
    agent_id: RawId
    task_id: RawId
    uuid: str  # base64 of 16 bytes, verbatim from TaskStatus.uuid


class RawAcknowledgeOperationStatus(TypedDict, total=False):
    agent_id: Required[RawId]
    resource_provider_id: RawId
    uuid: Required[str]
    operation_id: Required[RawId]


class RawReconcileTask(TypedDict, total=False):
    task_id: Required[RawId]
    agent_id: RawId


class RawReconcile(TypedDict, total=False):
    tasks: list[RawReconcileTask]


class RawReconcileOperation(TypedDict, total=False):
    operation_id: Required[RawId]
    agent_id: RawId
    resource_provider_id: RawId


class RawReconcileOperations(TypedDict, total=False):
    operations: list[RawReconcileOperation]


class RawMessageCall(TypedDict):
    agent_id: RawId
    executor_id: RawId
    data: str  # base64


class RawRequest(TypedDict, total=False):
    agent_id: RawId
    resources: list[RawResource]


class RawRequestCall(TypedDict):
    requests: list[RawRequest]


class RawUpdateFramework(TypedDict, total=False):
    framework_info: Required[RawFrameworkInfo]
    suppressed_roles: list[str]
    offer_constraints: RawOfferConstraints


class RawCall(TypedDict, total=False):
    type: Required[str]
    framework_id: RawId
    subscribe: RawSubscribe
    accept: RawAccept
    decline: RawDecline
    accept_inverse_offers: RawAcceptInverseOffers
    decline_inverse_offers: RawAcceptInverseOffers
    revive: RawRoles
    kill: RawKill
    shutdown: RawShutdown
    acknowledge: RawAcknowledge
    acknowledge_operation_status: RawAcknowledgeOperationStatus
    reconcile: RawReconcile
    reconcile_operations: RawReconcileOperations
    message: RawMessageCall
    request: RawRequestCall
    suppress: RawRoles
    update_framework: RawUpdateFramework


# --------------------------------------------------------------------------------------------
# Scheduler events (mesos.v1.scheduler.Event)

EventType: TypeAlias = Literal[
    "SUBSCRIBED",
    "OFFERS",
    "INVERSE_OFFERS",
    "RESCIND",
    "RESCIND_INVERSE_OFFER",
    "UPDATE",
    "UPDATE_OPERATION_STATUS",
    "MESSAGE",
    "FAILURE",
    "ERROR",
    "HEARTBEAT",
]


class RawSubscribed(TypedDict, total=False):
    framework_id: Required[RawId]
    heartbeat_interval_seconds: float
    master_info: RawMasterInfo


class RawRescind(TypedDict):
    offer_id: RawId


class RawRescindInverseOffer(TypedDict):
    inverse_offer_id: RawId


class RawUpdate(TypedDict):
    status: RawTaskStatus


class RawUpdateOperationStatus(TypedDict):
    status: RawOperationStatus


class RawMessageEvent(TypedDict, total=False):
    agent_id: Required[RawId]
    executor_id: Required[RawId]
    data: Required[str]  # base64


class RawFailure(TypedDict, total=False):
    agent_id: RawId
    executor_id: RawId  # absent: the agent was lost or removed
    status: int  # wait status of the executor


class RawError(TypedDict):
    message: str


class RawEvent(TypedDict, total=False):
    type: Required[str]
    subscribed: RawSubscribed
    offers: RawOffers
    inverse_offers: RawInverseOffers
    rescind: RawRescind
    rescind_inverse_offer: RawRescindInverseOffer
    update: RawUpdate
    update_operation_status: RawUpdateOperationStatus
    message: RawMessageEvent
    failure: RawFailure
    error: RawError
