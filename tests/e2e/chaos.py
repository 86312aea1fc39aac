"""The chaos harness's account: what runs on the host, against what the API server wants.

Why the host and not the master: issue 11's probe found 391 task processes for 200 pods while
the master showed no pod twice, and processes that nobody tracked at all. So every count here
comes from ``/proc``: each container of a chaos workload carries two environment variables, a
token of this run (``CHAOS_RUN``) and its pod's uid (``CHAOS_POD_UID``, through the downward
API), and every process that carries the token is counted, whoever started it and whoever
forgot it. ``tally`` (pure) compares that with the pods the API server holds: replicas lost,
duplicate processes of one pod, orphans (processes of no live pod). ``converge`` times the
recovery from a fault to a clean tally that stays clean; ``drain`` waits for processes to go.

The clusters the faults are done to are in ``chaos_clusters``; the tests in
``test_surviving_chaos*.py``; ``bench/chaos.py`` repeats the faults and prints the figures.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MARK",
    "NOTHING",
    "POD_UID",
    "Kube",
    "PodView",
    "Recovery",
    "Tally",
    "TaskProcess",
    "alive",
    "converge",
    "deployment",
    "drain",
    "kubectl",
    "pod_views",
    "rss_bytes",
    "tally",
    "task_processes",
]

MARK = "CHAOS_RUN"  # the run's token, in every chaos container's environment
POD_UID = "CHAOS_POD_UID"  # the container's pod uid (downward API), in its environment


# --------------------------------------------------------------------------------------------
# The host


@dataclasses.dataclass(frozen=True, slots=True)
class TaskProcess:
    """A running process of a chaos container, as found in /proc."""

    pid: int
    pod_uid: str
    sandbox: str  # its MESOS_SANDBOX (which agent's work dir it runs under)


def alive(pid: int) -> bool:
    """A process that still runs (a zombie waiting for its reaper has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _environ(pid: str) -> dict[str, str] | None:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    out: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            out[key.decode(errors="replace")] = value.decode(errors="replace")
    return out


def task_processes(token: str) -> list[TaskProcess]:
    """Every running process on this host whose environment carries ``CHAOS_RUN=token``."""
    needle = f"{MARK}={token}\0".encode()
    found: list[TaskProcess] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if needle not in raw + b"\0" or not alive(int(entry.name)):
            continue
        env = _environ(entry.name) or {}
        found.append(TaskProcess(pid=int(entry.name), pod_uid=env.get(POD_UID, ""),
                                 sandbox=env.get("MESOS_SANDBOX", "")))
    return found


def processes_mentioning(text: str) -> list[int]:
    """Running processes whose command line mentions ``text`` (e.g. a data dir)."""
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    """The resident set size of ``pid`` (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------------------------
# The API server


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
    """The real kubectl; AssertionError (with its output) when it fails."""
    argv = ["kubectl", "--kubeconfig", str(kubeconfig), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr}{done.stdout}")
    return done.stdout


class Kube:
    """A plain HTTPS reader of the API server in a kubeconfig (a CA and a bearer token, as
    devkube writes it): polling through kubectl would cost a process per look."""

    def __init__(self, kubeconfig: Path) -> None:
        doc = yaml.safe_load(kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        self.server = str(cluster["server"]).rstrip("/")
        user = doc["users"][0]["user"]
        self._token = str(user.get("token") or "")
        self._context = ssl.create_default_context()
        ca = cluster.get("certificate-authority-data")
        if ca:
            with tempfile.NamedTemporaryFile("wb", suffix=".crt") as f:
                f.write(base64.b64decode(ca))
                f.flush()
                self._context.load_verify_locations(f.name)

    def open(self, method: str, path: str, body: Any = None, *,
             timeout: float = 30) -> Any:
        """The open response (a context manager) of one request."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        return urllib.request.urlopen(request, timeout=timeout, context=self._context)

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        with self.open(method, path, body, timeout=timeout) as reply:
            return json.loads(reply.read() or b"null")

    def pods(self, selector: str, namespace: str = "default") -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"labelSelector": selector})
        items: list[dict[str, Any]] = self.call(
            "GET", f"/api/v1/namespaces/{namespace}/pods?{query}")["items"]
        return items

    def up(self) -> bool:
        try:
            self.call("GET", "/api/v1/namespaces/default", timeout=5)
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return True


class PodWatch:
    """Every pod uid of a selector that ever existed while it watched: a thread that lists,
    then watches from the list's resourceVersion, and lists again whenever the stream breaks
    (the API server was killed) or is answered 410. Why not the ReplicaSet's events: they are
    not durable (a killed devkube loses the last ones), and a pod created and deleted again
    after a restart leaves nothing else behind."""

    def __init__(self, kube: Kube, selector: str, namespace: str = "default") -> None:
        self._kube, self._selector, self._namespace = kube, selector, namespace
        self.seen: set[str] = set()
        self.running: set[str] = set()  # uids ever listed or watched with phase Running
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pod-watch")

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join(15)
        return set(self.seen)

    def _run(self) -> None:
        base = f"/api/v1/namespaces/{self._namespace}/pods"
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    query = urllib.parse.urlencode({"labelSelector": self._selector})
                    listed = self._kube.call("GET", f"{base}?{query}", timeout=10)
                    for pod in listed["items"]:
                        self._note(pod)
                    rv = str(listed["metadata"]["resourceVersion"])
                rv = self._follow(base, rv)
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                self._stop.wait(0.2)

    def _note(self, pod: dict[str, Any]) -> None:
        uid = str(pod["metadata"]["uid"])
        self.seen.add(uid)
        if (pod.get("status") or {}).get("phase") == "Running":
            self.running.add(uid)

    def _follow(self, base: str, rv: str) -> str | None:
        """Watch from ``rv`` until the stream ends or stalls: the last resourceVersion seen,
        or None when the server says it is too old (list again)."""
        query = urllib.parse.urlencode({"labelSelector": self._selector, "watch": "1",
                                        "resourceVersion": rv, "timeoutSeconds": "30"})
        with self._kube.open("GET", f"{base}?{query}", timeout=5) as stream:
            while not self._stop.is_set():
                try:
                    line = stream.readline()
                except TimeoutError:
                    return rv  # quiet for a while: watch again from where it was
                if not line:
                    return rv
                event = json.loads(line)
                meta = (event.get("object") or {}).get("metadata") or {}
                if event.get("type") == "ERROR":
                    return None
                if meta.get("uid"):
                    self._note(event["object"])
                if meta.get("resourceVersion"):
                    rv = str(meta["resourceVersion"])
        return rv


def deployment(name: str, *, token: str, replicas: int = 0,
               toleration_seconds: int | None = None) -> str:
    """A Deployment of ``sleep`` pods whose one container carries the chaos marks.

    ``toleration_seconds``: how long its pods stay on a not-ready or unreachable node (the
    API server's default is 300 s) before they are evicted."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 2,
        "containers": [{
            "name": "main",
            "image": "busybox:1.36",
            "command": ["sleep", "86400"],
            "env": [
                {"name": MARK, "value": token},
                {"name": POD_UID, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            ],
            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
        }],
    }
    if toleration_seconds is not None:
        spec["tolerations"] = [
            {"key": f"node.kubernetes.io/{key}", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": toleration_seconds}
            for key in ("not-ready", "unreachable")
        ]
    doc = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }
    return json.dumps(doc)


# --------------------------------------------------------------------------------------------
# The account (pure)


@dataclasses.dataclass(frozen=True, slots=True)
class PodView:
    uid: str
    name: str
    live: bool  # neither being deleted nor finished
    ready: bool  # Running with every container ready
    node: str = ""


def pod_views(pods: Iterable[dict[str, Any]]) -> list[PodView]:
    out: list[PodView] = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        phase = status.get("phase")
        statuses = status.get("containerStatuses") or []
        out.append(PodView(
            uid=str(meta.get("uid")), name=str(meta.get("name")),
            live=not meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"),
            ready=phase == "Running" and bool(statuses) and all(s.get("ready")
                                                               for s in statuses),
            node=str((pod.get("spec") or {}).get("nodeName") or ""),
        ))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Tally:
    """One look at a workload: ``wanted`` replicas against the pods and the host's processes.

    lost: replicas that have no running process (wanted − live pods with a process);
    duplicates: processes beyond the first of a live pod; orphans: processes of no live pod
    (a deleted or evicted pod, a task nobody tracks)."""

    wanted: int
    pods: int  # live pods
    ready: int  # live pods Running with every container ready
    processes: int
    lost: int
    duplicates: int
    orphans: int

    @property
    def clean(self) -> bool:
        return (self.pods == self.ready == self.wanted and self.lost == 0
                and self.duplicates == 0 and self.orphans == 0)

    def __str__(self) -> str:
        return (f"wanted {self.wanted}: {self.pods} live pods ({self.ready} ready), "
                f"{self.processes} task processes on the host; lost {self.lost}, "
                f"duplicates {self.duplicates}, orphans {self.orphans}")


def tally(*, wanted: int, pods: Sequence[PodView], processes: Sequence[TaskProcess]) -> Tally:
    live = {p.uid for p in pods if p.live}
    per_pod = Counter(p.pod_uid for p in processes)
    running = sum(1 for uid in live if per_pod.get(uid, 0) > 0)
    return Tally(
        wanted=wanted,
        pods=len(live),
        ready=sum(1 for p in pods if p.live and p.ready),
        processes=len(processes),
        lost=max(0, wanted - running),
        duplicates=sum(n - 1 for uid, n in per_pod.items() if uid in live and n > 1),
        orphans=sum(n for uid, n in per_pod.items() if uid not in live),
    )


# --------------------------------------------------------------------------------------------
# Waiting


@dataclasses.dataclass(frozen=True, slots=True)
class Recovery:
    """How a workload came back: ``seconds`` from the fault to the first look of the clean
    stretch that lasted (None: never within the bound), ``last`` look, the ``worst`` duplicates
    and orphans seen on the way (the high-water marks)."""

    seconds: float | None
    last: Tally
    max_duplicates: int
    max_orphans: int
    max_processes: int


NOTHING = Recovery(seconds=None, last=Tally(wanted=0, pods=0, ready=0, processes=0, lost=0,
                                           duplicates=0, orphans=0),
                   max_duplicates=0, max_orphans=0, max_processes=0)  # before any look


def converge(look: Callable[[], Tally], *, since: float, timeout: float,
             stable: float = 3.0, every: float = 0.5) -> Recovery:
    """Look until the tally has been clean for ``stable`` seconds (or ``timeout`` from
    ``since``, a ``time.monotonic()``); a look that fails (the API server is away) counts as
    not clean."""
    clean_since: float | None = None
    last: Tally | None = None
    worst = [0, 0, 0]
    while True:
        now = time.monotonic()
        try:
            last = look()
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            clean_since = None
        else:
            worst = [max(worst[0], last.duplicates), max(worst[1], last.orphans),
                     max(worst[2], last.processes)]
            if last.clean:
                clean_since = now if clean_since is None else clean_since
                if now - clean_since >= stable:
                    return Recovery(seconds=clean_since - since, last=last,
                                    max_duplicates=worst[0], max_orphans=worst[1],
                                    max_processes=worst[2])
            else:
                clean_since = None
        if now - since > timeout:
            return Recovery(seconds=None, last=last or NOTHING.last, max_duplicates=worst[0],
                            max_orphans=worst[1], max_processes=worst[2])
        time.sleep(every)


def drain(count: Callable[[], int], *, timeout: float, every: float = 0.5) -> tuple[int, float]:
    """Wait until ``count()`` is 0: (what is left, seconds waited)."""
    start = time.monotonic()
    left = count()
    while left and time.monotonic() - start < timeout:
        time.sleep(every)
        left = count()
    return left, time.monotonic() - start
