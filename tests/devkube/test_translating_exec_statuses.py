"""What the WebSocket client gets from devkube's stream translator for what a kubelet wrote on
the SPDY error stream, or for its refusal of the upgrade (as kube-apiserver's translator and
client-go's decoders turn them)."""

from __future__ import annotations

import json

from k8sbridge.devkube import spdyclient
from k8sbridge.devkube.streamtranslate import client_status, refusal_status

V4 = "v4.channel.k8s.io"


def test_success_and_nothing_are_success() -> None:
    assert client_status(V4, b"") == {"metadata": {}, "status": "Success"}
    assert client_status(V4, b'{"metadata":{},"status":"Success"}')["status"] == "Success"


def test_an_exit_code_keeps_its_code_with_the_translators_message() -> None:
    kubelet = {"status": "Failure", "reason": "NonZeroExitCode", "message": "anything",
               "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    status = client_status(V4, json.dumps(kubelet).encode())
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert status["message"] == ("command terminated with non-zero exit code: command "
                                 "terminated with exit code 3")


def test_other_failures_are_internal_errors() -> None:
    failed = client_status(V4, b'{"status":"Failure","message":"no such container"}')
    assert failed["reason"] == "InternalError" and "no such container" in failed["message"]
    assert "protocol error" in client_status(V4, b"not json")["message"]
    no_cause = client_status(V4, b'{"status":"Failure","reason":"NonZeroExitCode"}')
    assert "no ExitCode cause" in no_cause["message"]
    v3 = client_status("v3.channel.k8s.io", b"it broke")
    assert v3["message"] == "Internal error occurred: error executing remote command: it broke"


def test_a_refused_upgrade_passes_a_status_body_else_wraps_the_text() -> None:
    status = {"kind": "Status", "status": "Failure", "message": "m", "code": 404}
    assert refusal_status(spdyclient.Refused(404, b"", json.dumps(status).encode())) == status
    wrapped = refusal_status(spdyclient.Refused(404, b"", b'container "c" is not running\n'))
    assert wrapped["message"] == ('Internal error occurred: unable to upgrade connection: '
                                  'container "c" is not running')
