"""Checkpoints hold TaskInfos, whose environment may carry secret values (a pod's
``secretKeyRef``): the agent's meta directory is 0700 and what it writes there 0600, so another
user cannot read them (checked by reading as uid 65534, as the audit did)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from tests.kernel.agent import fakemaster as fm


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _readable_by_nobody(path: Path) -> bool:
    # setpriv switches the user in its own process (changing credentials between fork and
    # exec in this process, which runs gRPC threads, is not safe).
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "cat", str(path)], capture_output=True, check=False)
    assert probe.returncode in (0, 1), probe  # cat's own verdict, not a crash
    return probe.returncode == 0


async def test_checkpoints_and_event_logs_are_private() -> None:
    # A world-traversable work dir (pytest's own tmp dirs are 0700): only the agent's modes
    # stand between another user and the checkpoints.
    tmp_path = Path(tempfile.mkdtemp(prefix="k8sbridge-private-", dir="/tmp"))
    tmp_path.chmod(0o755)
    try:
        await _check_private(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


async def _check_private(tmp_path: Path) -> None:
    task = fm.command_task("s", "exec sleep 300")
    task["command"]["environment"] = {"variables": [{"name": "TOKEN", "value": "s3cr3t"}]}
    async with fm.running_agent(tmp_path) as run:
        await run.master.send(fm.run_task(task, checkpoint=True))
        await run.master.wait_state("s", "TASK_RUNNING")
        meta = tmp_path / "meta"
        [state] = list(meta.glob("slaves/*/frameworks/*/executors/s/runs/*/state.json"))
        events = state.with_name("events.jsonl")
        await run.master.wait_for(events.exists)
        assert "s3cr3t" in state.read_text()  # the TaskInfo is kept, as Mesos keeps it
        assert _mode(meta) == 0o700
        for path in (state, events, meta / "slaves" / "latest"):
            assert _mode(path) == 0o600, path
        assert not _readable_by_nobody(state)
        # The probe itself works: nobody can read a world-readable file in a public dir.
        public = tmp_path / "public.txt"
        public.write_text("x")
        public.chmod(0o644)
        assert _readable_by_nobody(public)
        await run.master.send(fm.kill_task("s", grace=0.5))
        await run.master.wait_state("s", "TASK_KILLED")
