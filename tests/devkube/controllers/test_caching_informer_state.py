"""The informer cache's write-through rules and indexes (no server needed for these)."""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, ObjectUid, RawObject


def _pod(name: str, *, uid: str, rv: int, owner: str | None = None,
         controller: bool = True) -> RawObject:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": uid,
                            "resourceVersion": str(rv)}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": "rs", "uid": owner, "controller": controller}]
    return {"metadata": meta}


def _informer() -> tuple[Informer, list[tuple[Any, Any]]]:
    inf = Informer(client=api.ApiClient(url="http://127.0.0.1:1", token=None, ca_file=None),
                   resource=api.PODS)
    seen: list[tuple[Any, Any]] = []
    inf.add_handler(lambda old, new: seen.append((old and old["metadata"]["resourceVersion"],
                                                  new and new["metadata"]["resourceVersion"])))
    return inf, seen


def test_older_versions_never_replace_newer_ones() -> None:
    inf, seen = _informer()
    inf.upsert(_pod("a", uid="u1", rv=5))
    inf.upsert(_pod("a", uid="u1", rv=3))  # a late watch event after our own write
    assert inf.get(ObjectKey("ns/a"))["metadata"]["resourceVersion"] == "5"  # type: ignore[index]
    inf.upsert(_pod("a", uid="u1", rv=7))
    assert seen == [(None, "5"), ("5", "7")]


def test_deleted_uids_are_not_resurrected_by_late_replies() -> None:
    inf, _ = _informer()
    inf.upsert(_pod("a", uid="u1", rv=5))
    inf.remove(_pod("a", uid="u1", rv=5))
    assert inf.get(ObjectKey("ns/a")) is None
    inf.upsert(_pod("a", uid="u1", rv=9))  # reply of a write that raced with the delete
    assert inf.get(ObjectKey("ns/a")) is None
    inf.upsert(_pod("a", uid="u2", rv=10))  # a new object of the same name is welcome
    assert inf.get(ObjectKey("ns/a"))["metadata"]["uid"] == "u2"  # type: ignore[index]
    inf.remove(_pod("a", uid="u1", rv=5))  # forgetting the old one leaves the new one alone
    assert inf.get(ObjectKey("ns/a")) is not None


def test_owner_indexes_follow_changes() -> None:
    inf, _ = _informer()
    inf.upsert(_pod("a", uid="u1", rv=1))
    inf.upsert(_pod("b", uid="u2", rv=2, owner="rs1"))
    inf.upsert(_pod("c", uid="u3", rv=3, owner="rs1", controller=False))
    names = lambda objs: sorted(o["metadata"]["name"] for o in objs)  # noqa: E731
    assert names(inf.controlled_by(ObjectUid("rs1"))) == ["b"]
    assert names(inf.owned_by(ObjectUid("rs1"))) == ["b", "c"]
    assert names(inf.uncontrolled("ns")) == ["a", "c"]
    inf.upsert(_pod("a", uid="u1", rv=4, owner="rs1"))  # adopted
    assert names(inf.controlled_by(ObjectUid("rs1"))) == ["a", "b"]
    assert names(inf.uncontrolled("ns")) == ["c"]
    inf.upsert(_pod("b", uid="u2", rv=5))  # released
    assert names(inf.controlled_by(ObjectUid("rs1"))) == ["a"]
    inf.remove(_pod("a", uid="u1", rv=4))
    assert inf.controlled_by(ObjectUid("rs1")) == []
    assert names(inf.items("ns")) == ["b", "c"] and inf.items("other") == []
