"""The URI fetcher: puts ``CommandInfo.uris`` into the sandbox before the task starts.

Why: tasks commonly ship their binaries or configs as URIs (Marathon's ``fetch``), and Mesos
fails the task (REASON_CONTAINER_LAUNCH_FAILED) when a URI cannot be fetched rather than running
it without its files. Local paths, ``file://`` and ``http(s)://`` are supported (there is no
HDFS or S3 client); archives are extracted when ``extract`` is true (the default), files marked
``executable`` get mode 0755, and ``output_file`` renames the download.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import aiohttp

from k8sbridge.kernel.agent.errors import FetchError

__all__ = ["FetchError", "fetch_all"]

_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
_MAX_BYTES = 1024 * 1024 * 1024


def _target_name(uri: Mapping[str, Any], parsed_path: str) -> str:
    output = uri.get("output_file")
    name = str(output) if output else os.path.basename(unquote(parsed_path.rstrip("/")))
    if not name or name in (".", "..") or "/" in name:
        raise FetchError(f"cannot derive a file name for URI {uri.get('value')!r}")
    return name


async def _download(url: str, target: Path) -> None:
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=300, sock_connect=10)
        ) as session, session.get(url) as response:
            if response.status != 200:
                raise FetchError(f"fetching {url} answered HTTP {response.status}")
            size = 0
            with open(target, "wb") as out:
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > _MAX_BYTES:
                        raise FetchError(f"{url} is larger than {_MAX_BYTES} bytes")
                    out.write(chunk)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise FetchError(f"failed to fetch {url}: {e}") from e


def _extract(path: Path, into: Path) -> None:
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    if not _safe_member(member):
                        raise FetchError(f"archive {path.name} has an unsafe member {member!r}")
                z.extractall(into)
        else:
            with tarfile.open(path) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise FetchError(f"failed to extract {path.name}: {e}") from e


def _safe_member(name: str) -> bool:
    return not name.startswith("/") and ".." not in Path(name).parts


async def fetch_all(uris: Sequence[Mapping[str, Any]], *, sandbox: Path) -> None:
    """Fetch every URI into ``sandbox``; ``FetchError`` on the first failure."""
    for uri in uris:
        value = uri.get("value") if isinstance(uri, Mapping) else None
        if not isinstance(value, str) or not value:
            raise FetchError("a URI without a value")
        parsed = urlparse(value)
        name = _target_name(uri, parsed.path or value)
        target = sandbox / name
        if parsed.scheme in ("http", "https"):
            await _download(value, target)
        elif parsed.scheme in ("", "file"):
            source = Path(unquote(parsed.path) if parsed.scheme else value)
            if not source.is_absolute():
                raise FetchError(f"URI {value!r} is a relative path")
            try:
                shutil.copyfile(source, target)
            except OSError as e:
                raise FetchError(f"failed to fetch {value}: {e}") from e
        else:
            raise FetchError(f"URI scheme {parsed.scheme!r} of {value!r} is not supported by "
                             "this agent's fetcher (local paths, file://, http://, https://)")
        if uri.get("executable"):
            target.chmod(0o755)
        elif uri.get("extract", True) and name.endswith(_ARCHIVES):
            _extract(target, sandbox)
