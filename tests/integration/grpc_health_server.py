"""A real grpcio server implementing grpc.health.v1.Health/Check, run as a pod's container.

Why a script: the gRPC probe tests need a container that speaks the standard health protocol.
It answers SERVING while the flag file exists and NOT_SERVING otherwise, for the server ("")
and the service named by --service; any other service is NOT_FOUND, as grpc-health does.
Usage: python grpc_health_server.py PORT FLAG_FILE [--service NAME]
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from concurrent import futures

import grpc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("flag")
    parser.add_argument("--service", default="demo.Greeter")
    args = parser.parse_args()
    known = {b"", b"\x0a" + bytes([len(args.service)]) + args.service.encode()}

    def check(request: bytes, context: grpc.ServicerContext) -> bytes:
        if request not in known:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08\x01" if os.path.exists(args.flag) else b"\x08\x02"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}),))
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"health server on {args.port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(0)


if __name__ == "__main__":
    main()
