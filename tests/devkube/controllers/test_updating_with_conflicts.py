"""Conflict handling against a real devkube: a PUT from a stale copy gets 409, the object is
re-read and the change re-applied; a change that is already there writes nothing."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from k8sbridge.devkube import main
from k8sbridge.devkube.controllers import base, errors
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.raw import RawObject


async def test_stale_update_is_reread_and_reapplied(tmp_path: Path) -> None:
    config = main.DevkubeConfig(port=0, insecure_http=True, controllers=False,
                                kubeconfig=tmp_path / "kubeconfig")
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=None, ca_file=None) as client:
        stale = await client.create(api.CONFIGMAPS, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1"}},
            namespace="default")
        other = copy.deepcopy(stale)
        other["data"]["b"] = "2"
        await client.replace(api.CONFIGMAPS, other)  # someone else writes first

        with pytest.raises(errors.Conflict):
            await client.replace(api.CONFIGMAPS, {**stale, "data": {"a": "x"}})

        calls = 0

        def set_a(obj: RawObject) -> bool:
            nonlocal calls
            calls += 1
            if obj["data"].get("a") == "x":
                return False
            obj["data"]["a"] = "x"
            return True

        reply = await base.update(client=client, resource=api.CONFIGMAPS, informer=None,
                                  current=stale, mutate=set_a)
        assert reply is not None and reply["data"] == {"a": "x", "b": "2"}  # b survived
        assert calls == 2  # applied to the stale copy, then again to the re-read one
        assert await base.update(client=client, resource=api.CONFIGMAPS, informer=None,
                                 current=reply, mutate=set_a) is None  # nothing to write
        with pytest.raises(errors.NotFound):
            await base.update(client=client, resource=api.CONFIGMAPS, informer=None,
                              current={**reply, "metadata": {**reply["metadata"],
                                                             "name": "missing"}},
                              mutate=lambda obj: True)
