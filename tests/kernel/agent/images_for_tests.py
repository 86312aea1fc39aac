"""Image archives for tests, built as ``docker save`` writes them (``manifest.json``, a config
and one layer tar) from Debian's ``busybox-static`` (``/bin/busybox``)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def _add(tar: tarfile.TarFile, name: str, data: bytes, *, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def busybox_archive(registry: Path, *, name: str = "busybox", tag: str = "latest",
                    env: tuple[str, ...] = ("PATH=/bin",), workdir: str = "",
                    cmd: tuple[str, ...] = ("sh",), os_release: str = "",
                    links: tuple[tuple[str, str], ...] = ()) -> Path:
    """``registry/<name>:<tag>.tar`` with busybox as ``/bin/busybox`` and ``/bin/sh``;
    ``/etc/os-release`` says ``NAME=<name>`` unless ``os_release`` is given; ``links`` are
    symbolic links ``(path, target)`` added to the layer."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for d in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        _add(tar, "bin/busybox", BUSYBOX.read_bytes(), mode=0o755)
        for applet in ("sh", "cat", "ls", "id", "echo", "touch", "mount", "sleep", "grep"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.LNKTYPE, "bin/busybox", 0o755
            tar.addfile(info)
        _add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n")
        _add(tar, "etc/os-release", (os_release or f"NAME={name}\n").encode())
        for link, target in links:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    layer_bytes = layer.getvalue()
    layer_id = hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"config": {"Env": list(env), "Cmd": list(cmd),
                                    "WorkingDir": workdir}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    registry.mkdir(parents=True, exist_ok=True)
    path = registry / f"{name}:{tag}.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, f"{layer_id}/layer.tar", layer_bytes)
        _add(tar, config_name, config)
        _add(tar, "manifest.json", json.dumps([{
            "Config": config_name, "RepoTags": [f"{name}:{tag}"],
            "Layers": [f"{layer_id}/layer.tar"]}]).encode())
    return path
