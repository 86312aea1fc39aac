"""``/exec`` and ``/attach``: ``kubectl exec`` (and ``cp``, which is exec + tar) as a nested
container session on the pod's Mesos agent (``mesos.sessions``), streamed with the kubelet's
channel protocol over WebSocket or SPDY/3.1, as a kubelet serves both.

SPDY/3.1 (``api_exec_spdy``, ``v4.channel.k8s.io``): what kube-apiserver >= 1.30 speaks to a
kubelet after translating kubectl's WebSocket, and what older API servers and kubectls use.
WebSocket ``v5.channel.k8s.io`` / ``v4.channel.k8s.io``: what a client reaching the kubelet
directly speaks (the official Python client; an API server relaying a v4-only WebSocket
client). The session serving is the same for both (``api_exec_channels.Channels``).

WebSocket: each binary message is a channel byte and data: 0 stdin, 1 stdout, 2 stderr, 3 error
(a ``metav1.Status``: Success, or Failure with reason ``NonZeroExitCode`` and the exit code as
an ``ExitCode`` cause, which kubectl turns into its own exit status), 4 terminal resize
(``{"Width":..,"Height":..}``); v5 adds the close signal (channel 255, then the channel closed:
the client's stdin EOF). As the kubelet does: the lowest writable channel gets an empty message
once the streams are ready, ``tty`` turns stderr off, at least one of stdin/stdout/stderr is
needed, and the connection is closed after the status.

``/attach`` to a container with ``tty: true`` (launched with ``ContainerInfo.tty_info``)
follows its terminal through ``ATTACH_CONTAINER_OUTPUT`` and, with ``-i`` and ``stdin: true``,
types into it through ``ATTACH_CONTAINER_INPUT`` (resizes as ``TTY_INFO``): Mesos' I/O
switchboard (``mesos.attach``). ``stdinOnce``: the first attach with input ends the
terminal's input (EOT) and later attaches are refused stdin, as a kubelet closes the stdin.
A container without a TTY has no switchboard, so attach follows its output from the sandbox
files from now on (as ``logs -f --tail=0``) and stdin is refused on the error channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from k8sbridge.kubelet import agents as mesos_agents
from k8sbridge.kubelet import api_base, api_exec_channels, api_exec_spdy, api_spdy_upgrade
from k8sbridge.mesos import attach, sessions

__all__ = ["EXEC_PROTOCOLS", "ExecRoutes", "exit_status", "parse_options"]

log = logging.getLogger(__name__)

EXEC_PROTOCOLS = api_exec_channels.EXEC_PROTOCOLS
MAX_MESSAGE = api_exec_channels.MAX_MESSAGE
STDIN, STDOUT, STDERR, ERROR = (api_exec_channels.STDIN, api_exec_channels.STDOUT,
                                api_exec_channels.STDERR, api_exec_channels.ERROR)
Options = api_exec_channels.Options
parse_options = api_exec_channels.parse_options
exit_status = api_exec_channels.exit_status
internal_error = api_exec_channels.internal_error
_KEPT_TARGETS = 4096
NO_STDIN = ("attaching to the stdin of a container without tty is not supported: Mesos keeps "
            "a task's stdin only on the terminal of its I/O switchboard; use kubectl exec")
STDIN_NOT_OPEN = "the container was not started with stdin: true; attach without -i"
STDIN_SPENT = ("the container's stdin was closed when its first attach ended (stdinOnce); "
               "attach without -i")


class ExecRoutes(api_base.ServerBase):
    """``/exec`` and ``/attach`` over WebSocket."""

    async def _where(self, ns: str, pod: str, container: str, *, fresh: bool = False
                     ) -> tuple[str, dict[str, Any]]:
        """(agent address, the task's ContainerID) of a pod's container; an HTTP error
        (raised) when it is not running anywhere. The ContainerID is read from the agent's
        ``/state`` once per task (``fresh``: again)."""
        if self._locator is None or self._agents is None:
            raise web.HTTPServiceUnavailable(text="kubelet is starting\n")
        where = self._locator.locate(namespace=ns, name=pod, container=container,
                                     previous=False)
        if where is None or where[3]:
            raise web.HTTPNotFound(text=f'container "{container}" in pod "{pod}" is not '
                                        "running\n")
        agent = self._agents.agents.get(where[0])
        if agent is None:
            raise web.HTTPServiceUnavailable(text=f"agent {where[0]} is not reachable\n")
        key = (agent.address, where[2])
        target = None if fresh else self._targets.get(key)
        if target is None:
            try:
                state = await self._reader.agent_state(agent.address)
            except mesos_agents.AgentsError as e:
                raise web.HTTPServiceUnavailable(text=f"agent {where[0]}: {e}\n") from e
            target = sessions.task_container(state, task_id=where[2])
            if target is not None:
                self._targets[key] = target
                while len(self._targets) > _KEPT_TARGETS:
                    self._targets.pop(next(iter(self._targets)))
        if target is None:
            raise web.HTTPNotFound(text=f'container "{container}" in pod "{pod}" is not '
                                        "running on its agent\n")
        return agent.address, target

    async def _open(self, request: web.Request, options: Options
                    ) -> tuple[str, web.Response | None]:
        """The protocol of the upgrade asked for (``websocket`` or the SPDY stream protocol
        negotiated), or the refusal to return."""
        if api_spdy_upgrade.is_spdy_upgrade(request):
            negotiated = api_spdy_upgrade.negotiate(request, api_exec_spdy.PROTOCOLS)
            if isinstance(negotiated, web.Response):
                return "", negotiated
            return negotiated, None
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return "", web.Response(status=400, text="Upgrade request required: this kubelet "
                                    "serves exec, attach and port-forward over WebSocket "
                                    f"({', '.join(EXEC_PROTOCOLS)}) or SPDY/3.1 "
                                    f"({', '.join(api_exec_spdy.PROTOCOLS)})\n")
        return "websocket", None

    async def _upgrade(self, request: web.Request, protocol: str, options: Options,
                       session: sessions.Input | None
                       ) -> tuple[web.StreamResponse, api_exec_channels.Channels | None]:
        """Answer the upgrade; the client's channels, or None when they never all opened."""
        if protocol == "websocket":
            ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=MAX_MESSAGE,
                                       autoping=True)
            await ws.prepare(request)
            ready = api_exec_channels.WebSocketChannels(ws)
            first = STDOUT if options.stdout else STDERR if options.stderr else ERROR
            await ready.send(first, b"")  # as the kubelet: the streams are ready
            return ws, ready
        upgraded = await api_spdy_upgrade.Upgraded.accept(request, protocol)
        spdy = api_exec_spdy.SpdyChannels(upgraded, protocol=protocol, options=options,
                                          session=session)
        if not await spdy.accept():
            await spdy.close()
            return upgraded.response, None
        return upgraded.response, spdy

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        try:
            options = parse_options(request.query, request.query.getall("command", []))
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        if not options.command:
            return web.Response(status=400, text="you must specify a command\n")
        protocol, refused = await self._open(request, options)
        if refused is not None:
            return refused
        where = (request.match_info["namespace"], request.match_info["pod"],
                 request.match_info["container"])
        address, target = await self._where(*where)
        try:
            session = await sessions.launch(self._reader, address, parent=target,
                                            command=options.command, tty=options.tty)
        except mesos_agents.AgentsError:
            # The task may have been restarted in a new container since it was read: again.
            address, target = await self._where(*where, fresh=True)
            try:
                session = await sessions.launch(self._reader, address, parent=target,
                                                command=options.command, tty=options.tty)
            except mesos_agents.AgentsError as e:
                return web.json_response(internal_error(
                    f"error executing command in container: {e}"), status=500)
        try:
            response, client = await self._upgrade(request, protocol, options, session)
        except BaseException:
            await session.close()
            raise
        if client is None:
            await session.close()
            return response
        await self._serve_session(client, session, options=options)
        return response

    @staticmethod
    async def _serve_session(client: api_exec_channels.Channels, session: sessions.Session,
                             *, options: Options) -> None:
        if not options.stdin and not options.tty:  # a terminal's input carries its resizes
            await session.close_input()
        reader = asyncio.create_task(client.pump_input(session, options))
        try:
            async for kind, data in session.output():
                channel = STDERR if kind == "STDERR" and not options.tty else STDOUT
                wanted = options.stderr if channel == STDERR else options.stdout
                if wanted and not await client.send(channel, data):
                    break
            if not reader.done():
                code = sessions.decode_status(await session.wait())
                await client.status(exit_status(code, options.command))
        except mesos_agents.AgentsError as e:
            if not reader.done():
                await client.status(internal_error(str(e)))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()
            await client.close()

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        try:
            options = parse_options(request.query, [])
        except ValueError as e:
            return web.Response(status=400, text=f"{e}\n")
        protocol, refused = await self._open(request, options)
        if refused is not None:
            return refused
        if self._locator is None or self._agents is None:
            return web.Response(status=503, text="kubelet is starting\n")
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        container = request.match_info["container"]
        where = self._locator.locate(namespace=ns, name=pod, container=container,
                                     previous=False)
        agent = self._agents.agents.get(where[0]) if where is not None else None
        fid = self._locator.framework_id
        if where is None or where[3] or agent is None or not fid:
            return web.Response(status=404, text=f'container "{container}" in pod "{pod}" '
                                "is not running\n")
        spec = self._container_spec(ns, pod, container)
        if spec.get("tty"):
            return await self._attach_terminal(request, protocol, options, spec,
                                               (ns, pod, container), task_id=where[2])
        if options.stdin:  # before the upgrade, as a kubelet refuses
            return web.json_response(internal_error(NO_STDIN), status=400)
        response, client = await self._upgrade(request, protocol, options, None)
        if client is None:
            return response
        base = f"/frameworks/{fid}/executors/{where[1]}/runs/latest/tasks/{where[2]}"
        await self._follow_output(client, agent.address, base, options)
        return response

    def _container_spec(self, ns: str, pod: str, container: str) -> dict[str, Any]:
        for raw in self._locator.known_pods() if self._locator is not None else []:
            meta = raw.get("metadata") or {}
            if meta.get("name") == pod and (meta.get("namespace") or "default") == ns:
                spec = raw.get("spec") or {}
                for found in [*(spec.get("containers") or []),
                              *(spec.get("initContainers") or [])]:
                    if found.get("name") == container:
                        return dict(found)
        return {}

    async def _attach_terminal(self, request: web.Request, protocol: str, options: Options,
                               spec: dict[str, Any], where: tuple[str, str, str], *,
                               task_id: str) -> web.StreamResponse:
        """Attach to a container with a TTY: its task's I/O switchboard (``mesos.attach``)."""
        refusal = None
        if options.stdin and not spec.get("stdin"):
            refusal = STDIN_NOT_OPEN
        elif options.stdin and task_id in self._stdin_spent:
            refusal = STDIN_SPENT
        if refusal is not None:  # before the upgrade, as a kubelet refuses
            return web.json_response(internal_error(refusal), status=400)
        address, target = await self._where(*where)
        once = bool(spec.get("stdinOnce")) and options.stdin
        try:
            attachment = await attach.attach(self._reader, address, container=target,
                                             stdin_once=once)
        except mesos_agents.AgentsError as e:
            return web.json_response(internal_error(f"error attaching to container: {e}"),
                                     status=500)
        try:
            response, client = await self._upgrade(request, protocol, options, attachment)
        except BaseException:
            await attachment.close()
            raise
        if client is None:
            await attachment.close()
            return response
        # the client's input (stdin only with -i), resizes, and its hanging up (detaches)
        reader = asyncio.create_task(client.pump_input(attachment, options))
        try:
            async for _, data in attachment.output():
                if not await client.send(STDOUT, data):
                    break
            if not reader.done():
                await client.status(exit_status(0, []))
        except mesos_agents.AgentsError as e:
            if not reader.done():
                await client.status(internal_error(str(e)))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await attachment.close()
            if once:
                self._stdin_spent.add(task_id)
            await client.close()
        return response

    async def _follow_output(self, client: api_exec_channels.Channels, address: str, base: str,
                             options: Options) -> None:
        """The container's stdout and stderr from their current ends, until the client hangs
        up or the task ends."""
        offsets: dict[str, int] = {}
        for name in ("stdout", "stderr"):
            try:
                _, offsets[name] = await self._reader.read_file(
                    address, path=f"{base}/{name}", offset=-1)
            except mesos_agents.AgentsError:
                offsets[name] = 0
        closed = asyncio.create_task(client.pump_input(None, options))
        try:
            while not closed.done():
                for name, channel, wanted in (("stdout", STDOUT, options.stdout),
                                              ("stderr", STDERR, options.stderr)):
                    try:
                        data, _ = await self._reader.read_file(
                            address, path=f"{base}/{name}", offset=offsets[name])
                    except mesos_agents.AgentsError:
                        continue
                    raw = data.encode()
                    offsets[name] += len(raw)
                    if raw and (wanted or options.tty) and not await client.send(
                            STDOUT if options.tty else channel, raw):
                        return
                await asyncio.wait({closed}, timeout=0.2)
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
            await client.close()
