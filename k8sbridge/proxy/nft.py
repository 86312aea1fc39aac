"""Running the real nftables (Debian's ``nftables``) in a network namespace: transactions
through its library, ``libnftables``, listings through its ``nft`` tool.

Why nftables' own text and not netlink from Python: a transaction in ``nft -f`` syntax is
committed atomically (all of it or none), which is what kube-proxy's knftables does too; the
text is what an operator reads with ``nft list table ip kube-proxy``.

Why the library for commits (``libnftables.so.1``, Debian's ``libnftables1``, which the ``nft``
binary is built on): one context kept for the proxy's life does what ``nft -f -`` does,
``nft_run_cmd_from_buffer``, without a process (``nsenter``, ``nft``, loading the library,
initialising it) for each commit: 2.5 ms of CPU instead of 9.8 ms for a one-element commit at
2,000 chains. It does not keep nft's cache between commits: nftables 1.0.6 re-reads every
chain whenever the kernel's generation id moved, which each commit does (that cost is what
``rules`` keeps small). The context lives in a thread of its own that entered the namespace
(``setns``, per thread for a network namespace), so the proxy's other threads stay in the
process's own namespace, where the Kubernetes API is; ctypes releases the GIL during a call, so
the event loop goes on meanwhile. With ``library=""`` each commit runs ``nft -f -`` instead,
entering the namespace with ``nsenter --net=PATH`` (util-linux).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import dataclasses
import os

__all__ = ["DEFAULT_LIBRARY", "Nft", "NftError"]

DEFAULT_LIBRARY = "libnftables.so.1"
CLONE_NEWNET = 0x40000000


class NftError(Exception):
    """nft refused a transaction or could not run (the message has its error output)."""


class _Context:
    """One libnftables context, used only from its own thread (in the namespace)."""

    def __init__(self, library: str, netns_path: str) -> None:
        self.library = library
        self.netns_path = netns_path
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="nft")
        self.lib: ctypes.CDLL | None = None
        self.ctx: int | None = None

    def _open(self) -> tuple[ctypes.CDLL, int]:
        if self.netns_path:
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                fd = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise NftError(f"cannot open the namespace {self.netns_path}: {e}") from e
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise NftError(f"cannot enter the namespace {self.netns_path}: "
                                   f"{os.strerror(ctypes.get_errno())}")
            finally:
                os.close(fd)
        try:
            lib = ctypes.CDLL(self.library)
        except OSError as e:
            raise NftError(f"cannot load {self.library}: {e}") from e
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
        if not ctx:
            raise NftError(f"{self.library}: nft_ctx_new failed")
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self.lib, self.ctx = lib, ctx
        return lib, ctx

    def run(self, text: str) -> None:
        """``nft -f -`` with ``text`` (in the context's thread)."""
        lib, ctx = (self.lib, self.ctx) if self.lib is not None and self.ctx else self._open()
        rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
        lib.nft_ctx_get_output_buffer(ctx)  # read, so that the next call starts empty
        err = lib.nft_ctx_get_error_buffer(ctx) or b""
        if rc != 0:
            raise NftError(f"{self.library} in {self.netns_path or 'this namespace'} refused "
                           f"the transaction: {err.decode(errors='replace').strip()[:2000]}")

    def free(self) -> None:
        if self.lib is not None and self.ctx:
            self.lib.nft_ctx_free(self.ctx)
        self.lib, self.ctx = None, None


@dataclasses.dataclass(slots=True)
class Nft:
    netns: str = ""  # a namespace name (/run/netns/NAME) or path; "": this process's own
    binary: str = "nft"
    library: str = DEFAULT_LIBRARY  # "": commits run the binary too
    _context: _Context | None = dataclasses.field(default=None, init=False, repr=False,
                                                  compare=False)

    @property
    def netns_path(self) -> str:
        if not self.netns or "/" in self.netns:
            return self.netns
        return f"/run/netns/{self.netns}"

    def argv(self, *args: str) -> list[str]:
        prefix = ["nsenter", f"--net={self.netns_path}"] if self.netns else []
        return [*prefix, self.binary, *args]

    async def run(self, *args: str, text: str = "") -> str:
        """``nft ARGS`` (the binary) with ``text`` on its standard input; its output."""
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
        if not transaction:
            return
        if not self.library:
            await self.run("-f", "-", text=transaction)
            return
        if self._context is None:
            self._context = _Context(self.library, self.netns_path)
        context = self._context
        await asyncio.get_running_loop().run_in_executor(context.executor, context.run,
                                                         transaction)

    def close(self) -> None:
        """Free the library's context and end its thread (a later ``apply`` makes new ones)."""
        context, self._context = self._context, None
        if context is not None:
            context.executor.submit(context.free)
            context.executor.shutdown(wait=True)

    async def list_table(self, table: str) -> str:
        return await self.run("list", "table", "ip", table)
