"""--data-dir keeps objects, resourceVersions and credentials across restarts (SQLite)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp

from k8sbridge.devkube import main
from tests.devkube.server.conftest import Api, pod

PODS = "/api/v1/namespaces/default/pods"


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, controllers=False, data_dir=tmp_path / "data")
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        api = Api(devkube=dk, session=session)
        _, kept = await api.request("POST", PODS, body=pod("kept"))
        await api.request("POST", PODS, body=pod("dropped"))
        await api.request("DELETE", f"{PODS}/dropped")
        _, listed = await api.request("GET", PODS)
        rv_before = int(listed["metadata"]["resourceVersion"])
        token, ca = dk.token, dk.ca_file.read_bytes() if dk.ca_file else b""
        port = int(dk.url.rsplit(":", 1)[1])
    # the same port again: the kubernetes Service's endpoints, which name it, stay unwritten
    config = dataclasses.replace(config, port=port)
    async with main.running(config) as dk, aiohttp.ClientSession() as session:
        assert dk.token == token and dk.ca_file is not None and dk.ca_file.read_bytes() == ca
        assert dk.kubeconfig == tmp_path / "data" / "kubeconfig"
        api = Api(devkube=dk, session=session)
        _, listed = await api.request("GET", PODS)
        assert [p["metadata"]["name"] for p in listed["items"]] == ["kept"]
        assert listed["items"][0]["metadata"]["uid"] == kept["metadata"]["uid"]
        assert int(listed["metadata"]["resourceVersion"]) == rv_before
        _, again = await api.request("POST", PODS, body=pod("again"))
        assert int(again["metadata"]["resourceVersion"]) > rv_before
        # a watch from before the restart cannot be resumed: in-stream 410, clients relist
        events = await api.watch(PODS, params={"resourceVersion": kept["metadata"][
            "resourceVersion"]})
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
