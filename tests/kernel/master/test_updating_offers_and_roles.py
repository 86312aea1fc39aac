"""UPDATE_FRAMEWORK, offer timeouts, and reservations made through ACCEPT."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from k8sbridge.kernel import main
from tests.kernel.master import wire
from tests.kernel.master.conftest import agent_config, master_config

MULTI = [{"type": "MULTI_ROLE"}, {"type": "RESERVATION_REFINEMENT"}]


async def test_update_framework(kernel: main.Kernel, session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    info = wire.framework_info(capabilities=MULTI, roles=["web"])
    await st.subscribe(info)
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    assert offer["allocation_info"] == {"role": "web"}
    new_info = {**info, "id": {"value": st.framework_id}, "roles": ["batch"], "name": "renamed"}
    code, text = await st.call({"type": "UPDATE_FRAMEWORK",
                                "update_framework": {"framework_info": new_info}})
    assert (code, text) == (200, "")
    rescind = await st.wait_for("RESCIND")  # the offer for the dropped role is taken back
    assert rescind["rescind"]["offer_id"] == offer["id"]
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    assert offer["allocation_info"] == {"role": "batch"}
    frameworks = await wire.operator(session, kernel.master_url, {"type": "GET_FRAMEWORKS"})
    assert frameworks["get_frameworks"]["frameworks"][0]["framework_info"]["name"] == "renamed"
    bad = {**new_info, "user": "somebody-else"}
    code, text = await st.call({"type": "UPDATE_FRAMEWORK",
                                "update_framework": {"framework_info": bad}})
    assert code == 400 and "Updating 'FrameworkInfo.user' is unsupported" in text
    code, text = await st.call({"type": "UPDATE_FRAMEWORK", "update_framework": {
        "framework_info": new_info, "suppressed_roles": ["web"]}})
    assert code == 400 and "are not contained in the set of roles" in text
    await st.close()


async def test_offer_timeout_rescinds(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with main.running_kernel(master=master_config(offer_timeout=0.5),
                                   agents=[agent_config(tmp_path)]) as kernel:
        st = wire.Stream(session, kernel.master_url)
        await st.subscribe()
        offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
        rescind = await st.wait_for("RESCIND", timeout=5)
        assert rescind["rescind"]["offer_id"] == offer["id"]
        # The rescinded offer is no longer valid.
        await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [
                wire.command_task("late", offer["agent_id"]["value"], "true")]}}]}})
        status = (await st.wait_for("UPDATE"))["update"]["status"]
        assert status["state"] == "TASK_LOST" and status["reason"] == "REASON_INVALID_OFFERS"
        await st.close()


async def test_reserve_and_unreserve_through_accept(
    kernel: main.Kernel, session: aiohttp.ClientSession
) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(capabilities=MULTI, roles=["web"], principal="ops"))
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    reserved = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                 "reservations": [{"type": "DYNAMIC", "role": "web", "principal": "ops"}]}]
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "RESERVE", "reserve": {"resources": reserved}}],
        "filters": {"refuse_seconds": 0}}})
    offer = (await st.wait_for("OFFERS", timeout=10))["offers"]["offers"][0]
    dynamic = [r for r in offer["resources"] if r.get("reservations")]
    assert dynamic == [{**reserved[0], "scalar": {"value": 1.0},
                        "allocation_info": {"role": "web"}}]
    agents = await wire.operator(session, kernel.master_url, {"type": "GET_AGENTS"})
    total = agents["get_agents"]["agents"][0]["total_resources"]
    assert any(r.get("reservations") for r in total)
    await st.call({"type": "ACCEPT", "accept": {"offer_ids": [offer["id"]], "operations": [
        {"type": "UNRESERVE", "unreserve": {"resources": reserved}}],
        "filters": {"refuse_seconds": 0}}})
    offer = (await st.wait_for("OFFERS", timeout=10))["offers"]["offers"][0]
    assert not [r for r in offer["resources"] if r.get("reservations")]
    cpus = sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus")
    assert cpus == 2.0
    await st.close()


async def test_suppress_one_role_of_two(kernel: main.Kernel,
                                        session: aiohttp.ClientSession) -> None:
    st = wire.Stream(session, kernel.master_url)
    await st.subscribe(wire.framework_info(capabilities=MULTI, roles=["a", "b"]),
                       suppressed_roles=["a"])
    offer = (await st.wait_for("OFFERS"))["offers"]["offers"][0]
    assert offer["allocation_info"] == {"role": "b"}  # "a" was suppressed at SUBSCRIBE
    await st.call({"type": "SUPPRESS", "suppress": {"roles": ["b"]}})
    await st.call({"type": "REVIVE", "revive": {"roles": ["a"]}})
    await st.call({"type": "DECLINE", "decline": {"offer_ids": [offer["id"]],
                                                  "filters": {"refuse_seconds": 0}}})
    offer = (await st.wait_for("OFFERS", timeout=5))["offers"]["offers"][0]
    assert offer["allocation_info"] == {"role": "a"}
    await st.close()
