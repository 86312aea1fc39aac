"""Running the real ``nft`` (Debian's nftables) in a network namespace.

Why the tool and not netlink from Python: ``nft -f -`` takes a whole transaction as text and
commits it atomically (all of it or none), which is what kube-proxy's knftables does too; the
text is what an operator reads with ``nft list table ip kube-proxy``. The namespace is entered
with ``nsenter --net=PATH`` (util-linux) for each call, so the proxy process itself stays in
its own namespace, where the Kubernetes API is.
"""

from __future__ import annotations

import asyncio
import dataclasses

__all__ = ["Nft", "NftError"]


class NftError(Exception):
    """nft refused a transaction or could not run (the message has its error output)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Nft:
    netns: str = ""  # a namespace name (/run/netns/NAME) or path; "": this process's own
    binary: str = "nft"

    @property
    def netns_path(self) -> str:
        if not self.netns or "/" in self.netns:
            return self.netns
        return f"/run/netns/{self.netns}"

    def argv(self, *args: str) -> list[str]:
        prefix = ["nsenter", f"--net={self.netns_path}"] if self.netns else []
        return [*prefix, self.binary, *args]

    async def run(self, *args: str, text: str = "") -> str:
        """``nft ARGS`` with ``text`` on its standard input; its output."""
        argv = self.argv(*args)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            raise NftError(f"cannot run {argv[0]}: {e}") from e
        out, err = await proc.communicate(text.encode())
        if proc.returncode != 0:
            raise NftError(f"{' '.join(argv)} failed ({proc.returncode}): "
                           f"{err.decode(errors='replace').strip()[:2000]}")
        return out.decode(errors="replace")

    async def apply(self, transaction: str) -> None:
        """Commit ``transaction`` (``nft -f`` text) atomically."""
        if transaction:
            await self.run("-f", "-", text=transaction)

    async def list_table(self, table: str) -> str:
        return await self.run("list", "table", "ip", table)
