"""A pod's volumes as Mesos ``ContainerInfo.volumes``, one list per container (pure).

Why: a kubelet gives each container its volumes at their paths or does not start it; a bridge
that drops a volume it cannot express runs the container against the host's directory instead
(the first version did exactly that). So every volume and mount is either rendered onto a Mesos
field or refused with a ``LaunchError`` naming the field (``CreateContainerConfigError``, an
event, nothing launched). The mapping (Mesos >= 1.9):

* ``emptyDir`` → ``SANDBOX_PATH`` ``PARENT`` ``volumes/<name>`` (the executor's sandbox, shared
  by the group's tasks), ``RW``/``RO`` per mount. ``medium: Memory`` and ``sizeLimit`` are
  refused (Mesos' sandbox is on the agent's disk, with no size of its own); an emptyDir shared
  by an init container and another container is refused (each init container runs in an
  executor of its own, whose sandbox the others never see).
* ``configMap``, ``secret``, ``downwardAPI``, ``projected`` → one ``SECRET`` volume with a
  ``VALUE`` per file at ``mountPath/<path>`` (``RO``); ``items``, ``optional`` and missing keys
  as the kubelet. Mesos writes these files 0644 (less the agent's umask) and has no per-file
  mode, so a ``defaultMode``/``mode`` other than 0644 is refused. A projection with no files
  is an empty read-only ``SANDBOX_PATH`` ``SELF`` directory. Contents are taken once at launch
  (the kubelet refreshes them; a restart of the container takes the new ones).
* ``hostPath`` → ``HOST_PATH`` (only with ``allow_host_path``); Mesos requires the path to exist
  and never creates it, so ``DirectoryOrCreate``/``FileOrCreate`` are refused, and so are the
  other ``type`` checks (the agent checks existence, not kind).
* anything else (``persistentVolumeClaim``, ``csi``, ``ephemeral``, ``image``, in-tree cloud
  disks ...), ``subPath``/``subPathExpr``, ``mountPropagation``, ``recursiveReadOnly`` and
  ``volumeDevices`` → refused.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from k8sbridge.scheduler import podenv

__all__ = [
    "FILE_MODE",
    "MAX_SECRET_BYTES",
    "Sources",
    "TokenWant",
    "check_pod",
    "container_volumes",
    "wanted",
]

Json = dict[str, Any]
RawPod = Mapping[str, Any]

FILE_MODE = 0o644  # what Mesos' volume/secret isolator writes (os::write, less the umask)
MAX_SECRET_BYTES = 1024 * 1024  # the API server's limit on a Secret's data
DEFAULT_TOKEN_SECONDS = 3600

SUPPORTED = ("emptyDir", "configMap", "secret", "downwardAPI", "projected", "hostPath")
# Why each refused volume type cannot be honoured (the message names the field).
REFUSED_VOLUMES = {
    "persistentVolumeClaim": "k8sbridge does not attach persistent volumes (Mesos offers no "
                             "PersistentVolumeClaim binding)",
    "csi": "k8sbridge has no CSI node plugin (Mesos CSI_VOLUME needs a resource provider)",
    "ephemeral": "generic ephemeral volumes need PersistentVolumeClaims, which k8sbridge does "
                 "not attach",
    "image": "image volumes have no Mesos equivalent in a task group",
}
REFUSED_OTHER = "this volume type has no Mesos equivalent in k8sbridge"
HOST_PATH_OFF = ("hostPath volumes are not allowed by this bridge (setting "
                 "scheduler.allow_host_path)")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@dataclasses.dataclass(frozen=True, slots=True)
class TokenWant:
    """One service-account token a projected volume asks for (a TokenRequest)."""

    service_account: str
    audience: str
    expiration_seconds: int


@dataclasses.dataclass(frozen=True, slots=True)
class Sources:
    """The objects the pod's volumes read, fetched before rendering (None: not found)."""

    config_maps: Mapping[str, Mapping[str, Any] | None] = dataclasses.field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any] | None] = dataclasses.field(default_factory=dict)
    tokens: Mapping[TokenWant, str] = dataclasses.field(default_factory=dict)


def _refuse(message: str) -> podenv.LaunchError:
    return podenv.LaunchError(message)


def _volume_kind(volume: Mapping[str, Any]) -> str:
    kinds = [k for k in volume if k != "name" and volume.get(k) is not None]
    name = volume.get("name")
    if len(kinds) != 1:
        raise _refuse(f'spec.volumes "{name}": exactly one volume source is needed, not '
                      f"{sorted(kinds)}")
    return kinds[0]


def _sources_of(volume: Mapping[str, Any], kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, source) of a projection: the volume itself, or each projected source."""
    if kind != "projected":
        return [(kind, volume.get(kind) or {})]
    out: list[tuple[str, Mapping[str, Any]]] = []
    for source in (volume.get("projected") or {}).get("sources") or []:
        for key, value in source.items():
            if value is not None:
                out.append((key, value or {}))
    return out


def wanted(pod: RawPod) -> tuple[set[str], set[str], set[TokenWant]]:
    """The ConfigMaps, Secrets and service-account tokens the pod's volumes read."""
    spec = pod.get("spec") or {}
    config_maps: set[str] = set()
    secrets: set[str] = set()
    tokens: set[TokenWant] = set()
    sa = str(spec.get("serviceAccountName") or "default")
    for volume in spec.get("volumes") or []:
        kind = _volume_kind(volume)
        if kind not in ("configMap", "secret", "projected"):
            continue
        for skind, source in _sources_of(volume, kind):
            if skind == "configMap":
                config_maps.add(str(source.get("name", "")))
            elif skind == "secret":
                secrets.add(str(source.get("secretName") or source.get("name") or ""))
            elif skind == "serviceAccountToken":
                tokens.add(TokenWant(
                    service_account=sa, audience=str(source.get("audience") or ""),
                    expiration_seconds=int(source.get("expirationSeconds")
                                           or DEFAULT_TOKEN_SECONDS)))
    return config_maps, secrets, tokens


def _all_containers(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    return ([("initContainers", c) for c in spec.get("initContainers") or []]
            + [("containers", c) for c in spec.get("containers") or []]
            + [("ephemeralContainers", c) for c in spec.get("ephemeralContainers") or []])


def check_pod(pod: RawPod, *, allow_host_path: bool) -> None:
    """Refuse what no container of the pod can be given (``LaunchError``), before anything
    runs: duplicate or unsupported volumes, and bad mounts in any container."""
    spec = pod.get("spec") or {}
    seen: set[str] = set()
    volumes: dict[str, Mapping[str, Any]] = {}
    for volume in spec.get("volumes") or []:
        name = str(volume.get("name") or "")
        if not name:
            raise _refuse("spec.volumes: a volume without a name")
        if name in seen:
            raise _refuse(f'spec.volumes: the name "{name}" is used by two volumes')
        seen.add(name)
        kind = _volume_kind(volume)
        if kind not in SUPPORTED:
            why = REFUSED_VOLUMES.get(kind, REFUSED_OTHER)
            raise _refuse(f'spec.volumes "{name}": {kind} is not supported: {why}')
        if kind == "hostPath" and not allow_host_path:
            raise _refuse(f'spec.volumes "{name}": {HOST_PATH_OFF}')
        if kind == "emptyDir":
            empty = volume.get("emptyDir") or {}
            if empty.get("medium"):
                raise _refuse(f'spec.volumes "{name}".emptyDir.medium '
                              f"{empty.get('medium')!r} is not supported: Mesos' sandbox "
                              "volumes are on the agent's disk")
            if empty.get("sizeLimit") is not None:
                raise _refuse(f'spec.volumes "{name}".emptyDir.sizeLimit is not supported: '
                              "Mesos' sandbox volumes have no size limit of their own")
        volumes[name] = volume
    users: dict[str, set[tuple[str, str]]] = {}
    for field, container in _all_containers(spec):
        cname = str(container.get("name") or "")
        where = f"spec.{field}{{{cname}}}"
        if container.get("volumeDevices"):
            raise _refuse(f"{where}.volumeDevices is not supported: k8sbridge attaches no "
                          "block devices")
        paths: set[str] = set()
        for mount in container.get("volumeMounts") or []:
            _check_mount(mount, where=where, volumes=volumes, paths=paths)
            users.setdefault(str(mount.get("name")), set()).add((field, cname))
    for name, mounted_by in users.items():
        if ("emptyDir" in volumes[name] and len(mounted_by) > 1
                and any(field == "initContainers" for field, _ in mounted_by)):
            raise _refuse(f'spec.volumes "{name}": an emptyDir shared with an init container '
                          "is not supported: each init container runs in a Mesos executor of "
                          "its own, whose sandbox the other containers never see")


def _check_mount(mount: Mapping[str, Any], *, where: str,
                 volumes: Mapping[str, Mapping[str, Any]], paths: set[str]) -> None:
    name = str(mount.get("name") or "")
    path = str(mount.get("mountPath") or "")
    at = f"{where}.volumeMounts[{name}]"
    if name not in volumes:
        raise _refuse(f'{at}: no volume named "{name}" in spec.volumes')
    if not path.startswith("/"):
        raise _refuse(f"{at}.mountPath {path!r} must be an absolute path")
    if ".." in path.split("/"):
        raise _refuse(f"{at}.mountPath {path!r} must not contain '..'")
    normal = posixpath.normpath(path)
    if normal in paths:
        raise _refuse(f"{at}.mountPath {path!r} is used by another mount of the container")
    paths.add(normal)
    for field in ("subPath", "subPathExpr"):
        if mount.get(field):
            raise _refuse(f"{at}.{field} is not supported: Mesos volumes mount a whole source")
    if mount.get("mountPropagation") not in (None, "None"):
        raise _refuse(f"{at}.mountPropagation {mount.get('mountPropagation')!r} is not "
                      "supported: k8sbridge mounts volumes without propagation")
    if mount.get("recursiveReadOnly") not in (None, "Disabled"):
        raise _refuse(f"{at}.recursiveReadOnly {mount.get('recursiveReadOnly')!r} is not "
                      "supported")


def container_volumes(
    *,
    pod: RawPod,
    container: Mapping[str, Any],
    sources: Sources,
    node_name: str,
    host_ip: str,
) -> list[Json]:
    """``ContainerInfo.volumes`` for ``container`` (call ``check_pod`` first)."""
    spec = pod.get("spec") or {}
    volumes = {str(v.get("name")): v for v in spec.get("volumes") or []}
    out: list[Json] = []
    for mount in container.get("volumeMounts") or []:
        name = str(mount.get("name"))
        volume = volumes[name]
        target = posixpath.normpath(str(mount.get("mountPath")))
        mode = "RO" if mount.get("readOnly") else "RW"
        kind = _volume_kind(volume)
        if kind == "emptyDir":
            out.append({"container_path": target, "mode": mode, "source": {
                "type": "SANDBOX_PATH",
                "sandbox_path": {"type": "PARENT", "path": f"volumes/{name}"}}})
        elif kind == "hostPath":
            out.append(_host_path(volume, target=target, mode=mode))
        else:
            files = _files(pod, volume, kind, sources=sources, node_name=node_name,
                           host_ip=host_ip)
            if not files:
                out.append({"container_path": target, "mode": "RO", "source": {
                    "type": "SANDBOX_PATH",
                    "sandbox_path": {"type": "SELF", "path": f"volumes/{name}"}}})
            for rel, data in files:
                out.append({"container_path": posixpath.join(target, rel), "mode": "RO",
                            "source": {"type": "SECRET", "secret": {
                                "type": "VALUE",
                                "value": {"data": base64.b64encode(data).decode()}}}})
    return out


def _host_path(volume: Mapping[str, Any], *, target: str, mode: str) -> Json:
    host = volume.get("hostPath") or {}
    path = str(host.get("path") or "")
    name = volume.get("name")
    if not path.startswith("/") or ".." in path.split("/"):
        raise _refuse(f'spec.volumes "{name}".hostPath.path {path!r} must be an absolute path '
                      "without '..'")
    kind = str(host.get("type") or "")
    if kind:
        raise _refuse(f'spec.volumes "{name}".hostPath.type {kind!r} is not supported: Mesos '
                      "HOST_PATH volumes require an existing path and check nothing else "
                      "(leave type empty)")
    return {"container_path": target, "mode": mode,
            "source": {"type": "HOST_PATH", "host_path": {"path": posixpath.normpath(path)}}}


# --------------------------------------------------------------------------------------------
# Files of configMap, secret, downwardAPI and projected volumes


def _check_mode(value: Any, where: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value != FILE_MODE:
        shown = oct(value) if isinstance(value, int) else repr(value)
        raise _refuse(f"{where} {shown} cannot be honoured: Mesos writes SECRET volume files "
                      "0644 and has no per-file mode")


def _check_rel(path: str, where: str) -> str:
    if (not path or path.startswith(("/", "..")) or ".." in path.split("/")):
        raise _refuse(f"{where} {path!r} must be a relative path without '..'")
    return posixpath.normpath(path)


def _files(pod: RawPod, volume: Mapping[str, Any], kind: str, *, sources: Sources,
           node_name: str, host_ip: str) -> list[tuple[str, bytes]]:
    name = volume.get("name")
    where = f'spec.volumes "{name}"'
    body = volume.get(kind) or {}
    _check_mode(body.get("defaultMode"), f"{where}.{kind}.defaultMode")
    out: dict[str, bytes] = {}
    for skind, source in _sources_of(volume, kind):
        swhere = f"{where}.{skind}" if kind != "projected" else f"{where}.projected.{skind}"
        if skind in ("configMap", "secret"):
            files = _object_files(pod, skind, source, sources=sources, where=swhere)
        elif skind == "downwardAPI":
            files = _downward_files(pod, source, node_name=node_name, host_ip=host_ip,
                                    where=swhere)
        elif skind == "serviceAccountToken":
            files = _token_file(pod, source, sources=sources, where=swhere)
        else:
            raise _refuse(f"{swhere} is not supported: {REFUSED_OTHER}")
        for rel, data in files:
            if rel in out:
                raise _refuse(f"{where}: two sources write the file {rel!r}")
            out[rel] = data
    return sorted(out.items())


def _object_files(pod: RawPod, kind: str, source: Mapping[str, Any], *, sources: Sources,
                  where: str) -> list[tuple[str, bytes]]:
    _check_mode(source.get("defaultMode"), f"{where}.defaultMode")
    if kind == "configMap":
        obj_name = str(source.get("name", ""))
        obj = sources.config_maps.get(obj_name)
        label = "configmap"
    else:
        obj_name = str(source.get("secretName") or source.get("name") or "")
        obj = sources.secrets.get(obj_name)
        label = "secret"
    optional = bool(source.get("optional"))
    if obj is None:
        if optional:
            return []
        raise _refuse(f'{label} "{obj_name}" not found')
    data: dict[str, bytes] = {}
    for key, value in (obj.get("data") or {}).items():
        data[str(key)] = (_decode(value, f'{label} "{obj_name}" key {key!r}')
                          if kind == "secret" else str(value).encode())
    for key, value in (obj.get("binaryData") or {}).items():
        data[str(key)] = _decode(value, f'{label} "{obj_name}" key {key!r}')
    if kind == "secret" and sum(len(v) for v in data.values()) > MAX_SECRET_BYTES:
        raise _refuse(f'secret "{obj_name}" is over 1 MiB')
    items = source.get("items")
    out: list[tuple[str, bytes]] = []
    if not items:
        for key in sorted(data):
            if not _KEY.match(key) or key in (".", "..") or key.startswith(".."):
                raise _refuse(f'{label} "{obj_name}": the key {key!r} is not a valid file name')
            out.append((key, data[key]))
        return out
    for i, item in enumerate(items):
        key = str(item.get("key", ""))
        _check_mode(item.get("mode"), f"{where}.items[{i}].mode")
        rel = _check_rel(str(item.get("path", "")), f"{where}.items[{i}].path")
        if key not in data:
            if optional:
                continue
            raise _refuse(f"couldn't find key {key} in {label.capitalize()} "
                          f"{_namespace(pod)}/{obj_name}")
        out.append((rel, data[key]))
    return out


def _decode(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError as e:
        raise _refuse(f"{what} is not base64: {e}") from e


def _namespace(pod: RawPod) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "default")


def _downward_files(pod: RawPod, source: Mapping[str, Any], *, node_name: str, host_ip: str,
                    where: str) -> list[tuple[str, bytes]]:
    _check_mode(source.get("defaultMode"), f"{where}.defaultMode")
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    out: list[tuple[str, bytes]] = []
    for i, item in enumerate(source.get("items") or []):
        at = f"{where}.items[{i}]"
        _check_mode(item.get("mode"), f"{at}.mode")
        rel = _check_rel(str(item.get("path", "")), f"{at}.path")
        if item.get("fieldRef") is not None:
            path = str((item["fieldRef"] or {}).get("fieldPath", ""))
            if path in ("metadata.labels", "metadata.annotations"):
                values = meta.get(path.split(".")[1]) or {}
                text = "\n".join(f"{k}={json.dumps(str(v), ensure_ascii=False)}"
                                 for k, v in sorted(values.items()))
            elif path.startswith("metadata."):
                text = podenv.field_ref(path, pod, node_name, host_ip)
            else:
                raise _refuse(f"{at}.fieldRef {path!r}: only metadata fields are supported "
                              "in downwardAPI volumes")
        elif item.get("resourceFieldRef") is not None:
            ref = item["resourceFieldRef"] or {}
            cname = str(ref.get("containerName") or "")
            container = next((c for _, c in _all_containers(spec) if c.get("name") == cname),
                             None)
            if container is None:
                raise _refuse(f"{at}.resourceFieldRef: no container named {cname!r}")
            text = podenv.resource_ref(ref, container, cname)
        else:
            raise _refuse(f"{at}: needs fieldRef or resourceFieldRef")
        out.append((rel, text.encode()))
    return out


def _token_file(pod: RawPod, source: Mapping[str, Any], *, sources: Sources,
                where: str) -> list[tuple[str, bytes]]:
    rel = _check_rel(str(source.get("path", "")), f"{where}.path")
    spec = pod.get("spec") or {}
    want = TokenWant(service_account=str(spec.get("serviceAccountName") or "default"),
                     audience=str(source.get("audience") or ""),
                     expiration_seconds=int(source.get("expirationSeconds")
                                            or DEFAULT_TOKEN_SECONDS))
    token = sources.tokens.get(want)
    if token is None:
        raise _refuse(f'{where}: no token for service account "{want.service_account}"')
    return [(rel, token.encode())]

