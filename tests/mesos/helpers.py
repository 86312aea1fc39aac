"""Shared test helpers: run a Framework as a task, record the events its handler got, make TLS,
build LAUNCH_GROUP operations as Mesos' wire JSON (what the bridge sends with ``accept``)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from k8sbridge.mesos import events, framework
from k8sbridge.model import resources as res

INFO_NAME = "k8sbridge-test"


def command_task(
        name: str, *, task_id: str, agent_id: str, resources: res.Resources, command: str
) -> dict[str, Any]:
    """A ``TaskInfo`` that runs ``/bin/sh -c command``."""
    return {
        "name": name,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": resources.to_raw(),
        "command": {"shell": True, "value": command},
    }


def launch_group(
        *,
        framework_id: str,
        executor_id: str,
        executor_resources: res.Resources,
        tasks: list[dict[str, Any]],
) -> dict[str, Any]:
    """An ``Offer.Operation`` LAUNCH_GROUP: a DEFAULT executor (its ``framework_id`` set, as the
    master requires) and ``tasks``."""
    executor = {
        "type": "DEFAULT",
        "executor_id": {"value": executor_id},
        "framework_id": {"value": framework_id},
        "resources": executor_resources.to_raw(),
    }
    return {
        "type": "LAUNCH_GROUP",
        "launch_group": {"executor": executor, "task_group": {"tasks": tasks}},
    }


class Recorder:
    """An event handler that records events; ``gate`` holds UPDATEs; ``fail`` raises on them."""

    def __init__(self) -> None:
        self.events: list[events.Event] = []
        self.changed = asyncio.Event()
        self.gate: asyncio.Event | None = None
        self.fail_updates = False

    async def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.Update):
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_updates:
                self.events.append(event)
                self.changed.set()
                raise RuntimeError("handler failed on purpose")
        self.events.append(event)
        self.changed.set()

    def of(self, kind: type[events.Event]) -> list[events.Event]:  # type: ignore[valid-type]
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(
            self, predicate: Callable[[events.Event], bool], *, count: int = 1, timeout: float = 10
    ) -> list[events.Event]:
        async def waiter() -> list[events.Event]:
            while True:
                found = [e for e in self.events if predicate(e)]
                if len(found) >= count:
                    return found
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(waiter(), timeout)


class Run:
    """A running ``Framework.run`` task and its ready flag."""

    def __init__(self, task: asyncio.Task[None], ready: asyncio.Event) -> None:
        self.task = task
        self.ready_flag = ready

    async def ready(self, timeout: float = 10) -> None:
        """Wait for ready; if run() failed first, raise its error (instead of a timeout)."""
        waiter = asyncio.ensure_future(self.ready_flag.wait())
        done, _ = await asyncio.wait(
            {waiter, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if self.ready_flag.is_set():
            return
        if self.task in done:
            self.task.result()
        raise TimeoutError("framework not ready in time")

    async def result(self, timeout: float = 10) -> None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)


@contextlib.asynccontextmanager
async def running(fw: framework.Framework) -> AsyncIterator[Run]:
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(fw.run(stop=stop, ready=ready))
    try:
        yield Run(task, ready)
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, 10)
        elif not task.cancelled():
            task.exception()  # retrieved: the test asserted on it if it mattered


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path
