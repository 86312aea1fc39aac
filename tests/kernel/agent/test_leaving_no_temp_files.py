"""An agent killed with SIGKILL leaves nothing in the temp dir (its sockets are abstract, its
temporary files live under its work dir), and what an interrupted write left under the work dir
is removed when the agent starts again (the audit found temp dirs with a private key left
after SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.kernel.agent import fakemaster as fm

_AGENT = """
import asyncio, sys
from pathlib import Path
from tests.kernel.agent import fakemaster as fm

async def main() -> None:
    async with fm.running_agent(Path(sys.argv[1]), keep_tasks=True) as run:
        await run.master.send(fm.run_task(fm.command_task("t", "exec sleep 300"),
                                          checkpoint=True))
        await run.master.wait_state("t", "TASK_RUNNING")
        print("READY", run.agent.agent_id, flush=True)
        await asyncio.sleep(300)

asyncio.run(main())
"""


async def test_sigkill_leaves_no_temp_files_and_a_restart_cleans_the_work_dir(
        tmp_path: Path) -> None:
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": os.getcwd()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _AGENT, str(work), env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.startswith(b"READY"), line
        agent_id = line.split()[1].decode()
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert list(tmp.iterdir()) == []  # nothing of the agent, its daemon or its task
    # What a kill in the middle of a checkpoint write leaves: the temporary files.
    [run_meta] = list(work.glob("meta/slaves/*/frameworks/*/executors/t/runs/*"))
    [runs] = list(work.glob("slaves/*/frameworks/*/executors/t/runs"))
    torn = [run_meta / ".state.json.tmp", work / "meta" / "slaves" / ".latest.tmp",
            runs / f".latest.{run_meta.name}"]
    for path in torn[:2]:
        path.write_text("{half a check")
    torn[2].symlink_to(run_meta.name)
    async with fm.running_agent(work) as run:  # recovers the task, then kills it on stop
        assert run.agent.agent_id == agent_id
        assert not any(p.exists() or p.is_symlink() for p in torn)
        assert (run_meta / "state.json").exists() and (runs / "latest").is_symlink()
        await run.master.wait_for(lambda: any(
            t.task_id == "t" and t.state == "TASK_RUNNING"
            for c in run.agent.live_containers() for t in c.tasks.values()))
    assert list(tmp.iterdir()) == []
