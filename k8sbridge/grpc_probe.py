"""A Kubernetes ``grpc`` probe as a program: ``grpc.health.v1.Health/Check``, exit 0 if SERVING.

Why a program: Mesos checks know COMMAND, HTTP and TCP, not gRPC, so a pod's ``grpc`` probe
becomes a COMMAND check (argv, no shell) that runs this file. It depends on grpcio alone (no
k8sbridge import, no generated code): the two messages are hand-encoded protobuf
(``HealthCheckRequest{string service = 1}``, ``HealthCheckResponse{ServingStatus status = 1}``),
so it can run as ``python /path/to/grpc_probe.py`` wherever Python and grpcio exist. As the
kubelet does, it connects in plaintext and succeeds only on ``SERVING``.

Exit codes: 0 SERVING; 1 any other status, an RPC error (``NOT_FOUND`` for an unknown service,
``UNIMPLEMENTED`` without the health service) or no connection within the timeout; 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["decode_status", "encode_request", "main", "probe"]

SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
METHOD = "/grpc.health.v1.Health/Check"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_request(service: str) -> bytes:
    """``HealthCheckRequest``: field 1 (string) when the service name is not empty."""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw if raw else b""


def decode_status(data: bytes) -> int:
    """The ``status`` (field 1, varint) of a ``HealthCheckResponse``; 0 when absent.

    Unknown fields are skipped by wire type, as protobuf parsers do."""
    status = 0
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            if field == 1:
                status = value
        elif wire == 2:
            length, i = _read_varint(data, i)
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > len(data):
            raise ValueError("truncated message")
    return status


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def probe(*, address: str, service: str, timeout: float) -> tuple[bool, str]:
    """(serving, what happened) for one Health/Check call."""
    import grpc

    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(METHOD)
        try:
            reply = call(encode_request(service), timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            name = code.name if code is not None else "UNKNOWN"
            details = e.details() if hasattr(e, "details") else ""
            return False, f"rpc error: {name} {details}".strip()
    try:
        status = decode_status(bytes(reply))
    except ValueError as e:
        return False, f"bad HealthCheckResponse: {e}"
    name = SERVING_STATUS.get(status, str(status))
    return status == 1, f"status: {name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grpc_probe", description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help="service name (default: the server)")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds (default 1)")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    ok, what = probe(address=args.address, service=args.service, timeout=args.timeout)
    print(f"grpc probe {args.address} service={args.service!r}: {what}",
          file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
