"""Raw Mesos v1 JSON shapes (``Raw*`` TypedDicts): JSON exactly as it travels on the wire.

Why TypedDicts and not classes: these are shared wire types. The scheduler client parses them
into frozen dataclasses (``types.py``); the embedded kernel builds and reads them directly. Keys
are the proto's snake_case names; ``Required`` marks proto ``required`` fields, everything else
may be absent. Nested-list wrappers are kept as on the wire (``{"labels": {"labels": [...]}}``,
``{"offers": {"offers": [...]}}``) because flattening them is the classic v1 mistake.
Source: ``include/mesos/v1/mesos.proto`` (see the reference). The scheduler API's ``Call`` and
``Event`` envelopes are in ``raw_scheduler.py``; ``TaskStatus`` is ``model.tasks.RawTaskStatus``.
"""

from __future__ import annotations

from typing import Any, Literal, Required, TypeAlias, TypedDict

# --------------------------------------------------------------------------------------------
# Small wrappers


class RawId(TypedDict):
    """FrameworkID, AgentID, OfferID, TaskID, ExecutorID, OperationID, ResourceProviderID."""

    value: str


class RawContainerId(TypedDict, total=False):
    value: Required[str]
    parent: RawContainerId


class RawLabel(TypedDict, total=False):
    key: Required[str]
    value: str


class RawLabels(TypedDict):
    labels: list[RawLabel]


class RawScalar(TypedDict):
    value: float


class RawRange(TypedDict):
    begin: int
    end: int


class RawRanges(TypedDict):
    range: list[RawRange]


class RawSet(TypedDict):
    item: list[str]


class RawText(TypedDict):
    value: str


class RawDuration(TypedDict):
    """DurationInfo and TimeInfo: int64 nanoseconds."""

    nanoseconds: int


class RawParameter(TypedDict):
    key: str
    value: str


class RawParameters(TypedDict):
    parameter: list[RawParameter]


# --------------------------------------------------------------------------------------------
# Resources and attributes

ValueType: TypeAlias = Literal["SCALAR", "RANGES", "SET", "TEXT"]


class RawAllocationInfo(TypedDict, total=False):
    role: str


class RawReservationInfo(TypedDict, total=False):
    type: Literal["STATIC", "DYNAMIC"]
    role: str
    principal: str
    labels: RawLabels


class RawLegacyReservation(TypedDict, total=False):
    """Pre-refinement ``Resource.reservation`` (with ``Resource.role`` naming the role)."""

    principal: str
    labels: RawLabels


class RawResource(TypedDict, total=False):
    name: Required[str]
    type: Required[Literal["SCALAR", "RANGES", "SET"]]
    scalar: RawScalar
    ranges: RawRanges
    set: RawSet
    role: str  # deprecated (pre-refinement)
    reservation: RawLegacyReservation  # deprecated (pre-refinement)
    reservations: list[RawReservationInfo]
    allocation_info: RawAllocationInfo
    disk: dict[str, Any]
    revocable: dict[str, Any]
    shared: dict[str, Any]
    provider_id: RawId


class RawAttribute(TypedDict, total=False):
    name: Required[str]
    type: Required[Literal["SCALAR", "RANGES", "SET", "TEXT"]]
    scalar: RawScalar
    ranges: RawRanges
    set: RawSet
    text: RawText


class RawScalarValue(TypedDict):
    """A ``map<string, Value.Scalar>`` value: ``{"mem": {"value": 512}}``."""

    value: float | str  # "Infinity" is allowed for limits


# --------------------------------------------------------------------------------------------
# Framework

FrameworkCapabilityType: TypeAlias = Literal[
    "UNKNOWN",
    "REVOCABLE_RESOURCES",
    "TASK_KILLING_STATE",
    "GPU_RESOURCES",
    "SHARED_RESOURCES",
    "PARTITION_AWARE",
    "MULTI_ROLE",
    "RESERVATION_REFINEMENT",
    "REGION_AWARE",
]


class RawCapability(TypedDict):
    type: str


class RawResourceQuantities(TypedDict):
    quantities: dict[str, RawScalar]


class RawMinAllocatable(TypedDict, total=False):
    quantities: list[RawResourceQuantities]


class RawOfferFilters(TypedDict, total=False):
    min_allocatable_resources: RawMinAllocatable


class RawFrameworkInfo(TypedDict, total=False):
    user: Required[str]
    name: Required[str]
    id: RawId
    failover_timeout: float
    checkpoint: bool
    role: str  # deprecated; unset with MULTI_ROLE
    roles: list[str]
    hostname: str
    principal: str
    webui_url: str
    capabilities: list[RawCapability]
    labels: RawLabels
    offer_filters: dict[str, RawOfferFilters]


class RawAttributeSelector(TypedDict, total=False):
    attribute_name: str
    pseudoattribute_type: Literal["HOSTNAME", "REGION", "ZONE"]


class RawAttributeConstraint(TypedDict, total=False):
    selector: RawAttributeSelector
    predicate: dict[str, Any]  # exists{} | not_exists{} | text_equals{value} | ...


class RawConstraintGroup(TypedDict, total=False):
    attribute_constraints: list[RawAttributeConstraint]


class RawRoleConstraints(TypedDict, total=False):
    groups: list[RawConstraintGroup]


class RawOfferConstraints(TypedDict, total=False):
    role_constraints: dict[str, RawRoleConstraints]


class RawMasterInfo(TypedDict, total=False):
    id: Required[str]
    ip: int
    port: int
    pid: str
    hostname: str
    version: str
    address: dict[str, Any]
    domain: RawDomainInfo
    capabilities: list[RawCapability]


class RawFaultDomainName(TypedDict):
    name: str


class RawFaultDomain(TypedDict, total=False):
    region: RawFaultDomainName
    zone: RawFaultDomainName


class RawDomainInfo(TypedDict, total=False):
    fault_domain: RawFaultDomain


class RawAddress(TypedDict, total=False):
    hostname: str
    ip: str
    port: int


class RawURL(TypedDict, total=False):
    scheme: str
    address: RawAddress
    path: str
    query: list[RawParameter]
    fragment: str


class RawUnavailability(TypedDict, total=False):
    start: RawDuration
    duration: RawDuration


# --------------------------------------------------------------------------------------------
# Tasks, executors, containers


class RawEnvironmentVariable(TypedDict, total=False):
    name: Required[str]
    type: Literal["VALUE", "SECRET"]
    value: str
    secret: dict[str, Any]


class RawEnvironment(TypedDict):
    variables: list[RawEnvironmentVariable]


class RawCommandURI(TypedDict, total=False):
    value: Required[str]
    executable: bool
    extract: bool
    cache: bool
    output_file: str


class RawCommandInfo(TypedDict, total=False):
    value: str
    shell: bool
    arguments: list[str]
    environment: RawEnvironment
    uris: list[RawCommandURI]
    user: str


class RawImage(TypedDict, total=False):
    type: Required[Literal["APPC", "DOCKER"]]
    docker: dict[str, Any]  # {"name": "alpine:3", "credential"?, "config"?}
    appc: dict[str, Any]
    cached: bool


class RawMesosContainerInfo(TypedDict, total=False):
    image: RawImage


class RawPortMapping(TypedDict, total=False):
    host_port: Required[int]
    container_port: Required[int]
    protocol: str


class RawIPAddress(TypedDict, total=False):
    protocol: Literal["IPv4", "IPv6"]
    ip_address: str


class RawNetworkInfo(TypedDict, total=False):
    ip_addresses: list[RawIPAddress]
    name: str
    groups: list[str]
    labels: RawLabels
    port_mappings: list[RawPortMapping]


class RawVolume(TypedDict, total=False):
    mode: Literal["RW", "RO"]
    container_path: Required[str]
    host_path: str
    image: RawImage
    source: dict[str, Any]


class RawContainerInfo(TypedDict, total=False):
    type: Required[Literal["MESOS", "DOCKER"]]
    volumes: list[RawVolume]
    hostname: str
    mesos: RawMesosContainerInfo
    docker: dict[str, Any]
    network_infos: list[RawNetworkInfo]
    linux_info: dict[str, Any]
    rlimit_info: dict[str, Any]
    tty_info: dict[str, Any]


class RawHttpCheck(TypedDict, total=False):
    port: Required[int]
    path: str
    scheme: str
    statuses: list[int]
    protocol: str


class RawTcpCheck(TypedDict):
    port: int


class RawHealthCheck(TypedDict, total=False):
    type: Literal["UNKNOWN", "COMMAND", "HTTP", "TCP"]
    command: RawCommandInfo
    http: RawHttpCheck
    tcp: RawTcpCheck
    delay_seconds: float
    interval_seconds: float
    timeout_seconds: float
    consecutive_failures: int
    grace_period_seconds: float


class RawCheckCommand(TypedDict):
    command: RawCommandInfo


class RawCheckInfo(TypedDict, total=False):
    type: Literal["UNKNOWN", "COMMAND", "HTTP", "TCP"]
    command: RawCheckCommand
    http: RawHttpCheck
    tcp: RawTcpCheck
    delay_seconds: float
    interval_seconds: float
    timeout_seconds: float


class RawKillPolicy(TypedDict, total=False):
    grace_period: RawDuration


class RawDiscoveryPort(TypedDict, total=False):
    number: Required[int]
    name: str
    protocol: str


class RawDiscoveryInfo(TypedDict, total=False):
    visibility: Required[Literal["FRAMEWORK", "CLUSTER", "EXTERNAL"]]
    name: str
    environment: str
    location: str
    version: str
    ports: dict[str, list[RawDiscoveryPort]]
    labels: RawLabels


class RawExecutorInfo(TypedDict, total=False):
    type: Literal["UNKNOWN", "DEFAULT", "CUSTOM"]
    executor_id: Required[RawId]
    framework_id: RawId
    command: RawCommandInfo
    container: RawContainerInfo
    resources: list[RawResource]
    name: str
    source: str
    data: str  # base64
    discovery: RawDiscoveryInfo
    shutdown_grace_period: RawDuration
    labels: RawLabels


class RawTaskInfo(TypedDict, total=False):
    name: Required[str]
    task_id: Required[RawId]
    agent_id: Required[RawId]
    resources: list[RawResource]
    executor: RawExecutorInfo
    command: RawCommandInfo
    container: RawContainerInfo
    health_check: RawHealthCheck
    check: RawCheckInfo
    kill_policy: RawKillPolicy
    data: str  # base64
    labels: RawLabels
    discovery: RawDiscoveryInfo
    max_completion_time: RawDuration
    limits: dict[str, RawScalarValue]


class RawTaskGroupInfo(TypedDict):
    tasks: list[RawTaskInfo]


# --------------------------------------------------------------------------------------------
# Offers and operations


class RawOffer(TypedDict, total=False):
    id: Required[RawId]
    framework_id: Required[RawId]
    agent_id: Required[RawId]
    hostname: Required[str]
    url: RawURL
    domain: RawDomainInfo
    resources: list[RawResource]
    attributes: list[RawAttribute]
    executor_ids: list[RawId]
    unavailability: RawUnavailability
    allocation_info: RawAllocationInfo


class RawOffers(TypedDict):
    offers: list[RawOffer]


class RawInverseOffer(TypedDict, total=False):
    id: Required[RawId]
    url: RawURL
    framework_id: Required[RawId]
    agent_id: RawId
    unavailability: Required[RawUnavailability]
    resources: list[RawResource]


class RawInverseOffers(TypedDict):
    inverse_offers: list[RawInverseOffer]


class RawLaunch(TypedDict):
    task_infos: list[RawTaskInfo]


class RawLaunchGroup(TypedDict):
    executor: RawExecutorInfo
    task_group: RawTaskGroupInfo


class RawReserve(TypedDict, total=False):
    resources: Required[list[RawResource]]
    source: list[RawResource]


class RawUnreserve(TypedDict):
    resources: list[RawResource]


class RawVolumes(TypedDict):
    volumes: list[RawResource]


OperationType: TypeAlias = Literal[
    "LAUNCH",
    "LAUNCH_GROUP",
    "RESERVE",
    "UNRESERVE",
    "CREATE",
    "DESTROY",
    "GROW_VOLUME",
    "SHRINK_VOLUME",
    "CREATE_DISK",
    "DESTROY_DISK",
]


class RawOperation(TypedDict, total=False):
    """``Offer.Operation``."""

    type: Required[str]
    id: RawId
    launch: RawLaunch
    launch_group: RawLaunchGroup
    reserve: RawReserve
    unreserve: RawUnreserve
    create: RawVolumes
    destroy: RawVolumes
    grow_volume: dict[str, Any]
    shrink_volume: dict[str, Any]
    create_disk: dict[str, Any]
    destroy_disk: dict[str, Any]


class RawFilters(TypedDict, total=False):
    refuse_seconds: float


class RawOperationStatus(TypedDict, total=False):
    operation_id: RawId
    state: Required[str]
    message: str
    converted_resources: list[RawResource]
    uuid: dict[str, str]  # {"value": "<b64>"} (a UUID message, not bytes)
    agent_id: RawId
    resource_provider_id: RawId
