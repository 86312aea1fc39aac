"""Network namespaces left under /run by agents whose work directory is gone (a killed run on
a temporary directory) are unmounted by the next agent that starts on the host; those of
agents whose work directory exists, and roots nobody claimed, are left alone."""

from __future__ import annotations

import subprocess
from pathlib import Path

from k8sbridge.kernel.agent import cni


def _root_with_a_namespace(base: Path, slug: str, owner: Path | None) -> Path:
    ns = base / slug / "isolators" / "network" / "cni" / "c1" / "ns"
    ns.parent.mkdir(parents=True)
    ns.touch()
    subprocess.run(["unshare", f"--net={ns}", "true"], check=True, timeout=20)
    if owner is not None:
        (base / slug / "work_dir").write_text(str(owner))
    return ns


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def test_namespaces_of_agents_whose_work_dir_is_gone_are_unmounted(tmp_path: Path) -> None:
    base = tmp_path / "run"
    live_dir = tmp_path / "live-agent"
    live_dir.mkdir()
    gone = _root_with_a_namespace(base, "gone", tmp_path / "deleted-agent")
    live = _root_with_a_namespace(base, "live", live_dir)
    unclaimed = _root_with_a_namespace(base, "unclaimed", None)
    try:
        assert all(_mounted(p) for p in (gone, live, unclaimed))
        assert cni.sweep_orphans(base) == 1
        assert not _mounted(gone) and not (base / "gone").exists()
        assert _mounted(live) and _mounted(unclaimed)
        assert cni.sweep_orphans(base) == 0
    finally:
        for ns in (gone, live, unclaimed):
            if _mounted(ns):
                subprocess.run(["umount", "-l", str(ns)], check=False)


def test_an_agent_claims_its_root_with_its_resolved_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "agent"
    root = cni.root_dir(work_dir=work, persist=False)
    root.mkdir(parents=True)
    try:
        cni.claim(root, work_dir=work)
        assert (root.parents[2] / "work_dir").read_text() == str(work.resolve())
    finally:
        subprocess.run(["rm", "-rf", str(root.parents[2])], check=False)
