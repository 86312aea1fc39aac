"""Docker images from a local registry directory, as Mesos' docker store does with
``--docker_registry=/path`` (its image tarball puller) and ``--docker_store_dir``.

The registry directory holds image archives as ``docker save`` writes them, named
``<repository>:<tag>.tar`` (``busybox`` is ``busybox:latest.tar``). An image is pulled once:
each layer is unpacked into ``<store>/layers/<id>/rootfs`` (whiteouts turned into overlayfs
ones), and ``<store>/images/<name>.json`` records its layers (lowest first) and its config
(Entrypoint, Cmd, Env, WorkingDir, User) for the ``docker/runtime`` rules in ``filesystems``.

Both archive formats are read: the legacy one Mesos reads (``repositories`` and a ``json``
with its ``parent`` per layer) and ``manifest.json`` (what ``docker save`` has written since
1.10, and the only one of OCI-layout archives).

Why unpacked and not copied per container: the overlay backend stacks the shared read-only
layers under a private upper layer per container (``rootfs``), as Mesos' overlay backend.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["Image", "ImageError", "Store", "parse_reference"]


class ImageError(Exception):
    """An image cannot be provided (the message goes into the task's TASK_FAILED)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    name: str  # "repository:tag"
    layers: tuple[str, ...]  # unpacked layer roots, lowest first
    config: dict[str, Any]  # the image's container config (Entrypoint, Cmd, Env, ...)


def parse_reference(name: str) -> tuple[str, str]:
    """``(repository, tag)`` of a docker image name (``busybox`` -> ``busybox``, ``latest``);
    a digest reference keeps its digest as the tag."""
    if "@" in name:
        repo, digest = name.split("@", 1)
        return repo, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, "latest"


def _layer_id(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-1] in ("layer.tar", "layer"):
        return parts[-2]
    return parts[-1].removesuffix(".tar")


def _safe_member(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """``tarfile``'s ``tar`` filter (no absolute names, nothing outside ``dest``, no device
    files) keeping the member's mode bits (an image's setuid programs stay setuid); a hard
    link keeps its target's (a chmod through it would change the target)."""
    checked: tarfile.TarInfo | None = tarfile.tar_filter(member, dest)
    if checked is None or member.islnk():
        return checked
    return checked.replace(mode=member.mode, deep=False)


def _unpack_layer(archive: tarfile.TarFile, dest: Path) -> None:
    """Unpack one layer tar into ``dest``, turning docker whiteouts into overlayfs ones."""
    whiteouts: list[str] = []
    opaque: list[str] = []
    members = []
    for member in archive.getmembers():
        base = os.path.basename(member.name.rstrip("/"))
        parent = os.path.dirname(member.name.rstrip("/"))
        if base == ".wh..wh..opq":
            opaque.append(parent)
        elif base.startswith(".wh."):
            whiteouts.append(os.path.join(parent, base[len(".wh."):]))
        else:
            members.append(member)
    archive.extractall(dest, members=members, numeric_owner=True, filter=_safe_member)
    root = os.path.realpath(dest)
    for rel in whiteouts:
        target = os.path.realpath(os.path.join(root, rel))
        if not target.startswith(root + "/"):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.mknod(target, 0o600 | 0o020000, os.makedev(0, 0))  # a character device 0/0
    for rel in opaque:
        target = os.path.realpath(os.path.join(root, rel))
        if target == root or target.startswith(root + "/"):
            os.makedirs(target, exist_ok=True)
            os.setxattr(target, "trusted.overlay.opaque", b"y")


class Store:
    """The agent's docker store (``--docker_store_dir``) fed from a local registry."""

    def __init__(self, *, registry: Path, store_dir: Path) -> None:
        self.registry = registry
        self.store_dir = store_dir

    def archive_path(self, name: str) -> Path:
        repo, tag = parse_reference(name)
        return self.registry / f"{repo}:{tag}.tar"

    def _record_path(self, name: str) -> Path:
        repo, tag = parse_reference(name)
        return self.store_dir / "images" / f"{repo.replace('/', '%2F')}:{tag}.json"

    def get(self, name: str, *, cached: bool = True) -> Image:
        """The image, pulled into the store first if it is not there, or always when not
        ``cached`` (Mesos' ``Image.cached``: the archive is read again, and layers the store
        does not have yet are unpacked); blocking: run it in a thread. Raises ``ImageError``
        with Mesos' words when it cannot be found or read."""
        if not cached:
            return self._pull(name)
        record = self._record_path(name)
        try:
            data = json.loads(record.read_text())
            layers = tuple(str(self.store_dir / "layers" / i / "rootfs") for i in data["layers"])
            if all(os.path.isdir(p) for p in layers):
                return Image(name=name, layers=layers, config=dict(data.get("config") or {}))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return self._pull(name)

    def _pull(self, name: str) -> Image:
        repo, tag = parse_reference(name)
        image = f"{repo}:{tag}"
        tar_path = self.archive_path(name)
        if not tar_path.is_file():
            raise ImageError(f"Failed to find archive for image '{image}' at '{tar_path}'")
        staging = self.store_dir / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=staging))
        try:
            try:
                with tarfile.open(tar_path) as archive:
                    archive.extractall(work, filter="data")
                layer_paths, config = _layers_and_config(work, repo=repo, tag=tag)
            except (OSError, tarfile.TarError, ValueError, KeyError, TypeError) as e:
                raise ImageError(f"Failed to read the archive of image '{image}' at "
                                 f"'{tar_path}': {e}") from e
            ids: list[str] = []
            for rel in layer_paths:
                layer_id = _layer_id(rel)
                ids.append(layer_id)
                final = self.store_dir / "layers" / layer_id
                if (final / "rootfs").is_dir():
                    continue  # unpacked before (layers are shared between images)
                unpacked = work / "unpacked" / layer_id
                try:
                    with tarfile.open(work / rel) as layer:
                        _unpack_layer(layer, unpacked / "rootfs")
                except (OSError, tarfile.TarError) as e:
                    raise ImageError(f"Failed to extract layer '{layer_id}' of image "
                                     f"'{image}': {e}") from e
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(unpacked, final)
                except OSError:  # unpacked meanwhile by a concurrent pull
                    if not (final / "rootfs").is_dir():
                        raise
            record = self._record_path(name)
            record.parent.mkdir(parents=True, exist_ok=True)
            tmp = record.with_name(f".{record.name}.tmp")
            tmp.write_text(json.dumps({"layers": ids, "config": config}))
            os.replace(tmp, record)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return Image(name=name, config=config, layers=tuple(
            str(self.store_dir / "layers" / i / "rootfs") for i in ids))


def _layers_and_config(work: Path, *, repo: str, tag: str) -> tuple[list[str], dict[str, Any]]:
    """The image's layer tars (relative to ``work``, lowest first) and container config."""
    repositories = work / "repositories"
    manifest_path = work / "manifest.json"
    if repositories.is_file() and not manifest_path.is_file():
        repos = json.loads(repositories.read_text())
        entry = repos.get(repo) or repos.get(f"library/{repo}")
        if not isinstance(entry, dict):
            raise ValueError(f"Repository '{repo}' does not exist in 'repositories'")
        top = entry.get(tag)
        if not isinstance(top, str):
            raise ValueError(f"Layer id '{tag}' is not found")
        chain: list[str] = []
        layer: str | None = top
        while layer:
            chain.insert(0, layer)
            meta = json.loads((work / layer / "json").read_text())
            parent = meta.get("parent")
            layer = parent if isinstance(parent, str) and parent else None
        top_meta = json.loads((work / top / "json").read_text())
        return [f"{i}/layer.tar" for i in chain], dict(top_meta.get("config") or {})
    manifest = json.loads(manifest_path.read_text())
    if not isinstance(manifest, list) or not manifest:
        raise ValueError("'manifest.json' lists no image")
    wanted = {f"{repo}:{tag}", f"library/{repo}:{tag}", f"docker.io/library/{repo}:{tag}"}
    entry = next((m for m in manifest if wanted & set(m.get("RepoTags") or [])), manifest[0])
    config_doc = json.loads((work / str(entry["Config"])).read_text())
    return [str(p) for p in entry["Layers"]], dict(config_doc.get("config") or {})
