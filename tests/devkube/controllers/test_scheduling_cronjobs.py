"""Cron schedules (robfig/cron's rules and words) and the CronJob controller's decisions, with a
fake clock: the controller itself runs against a real devkube with its clock set by the test."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from k8sbridge.devkube import cron, main
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import cronplan
from k8sbridge.devkube.controllers.cronjob import CronJobController
from k8sbridge.devkube.controllers.informer import Informer

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("*/15 * * * *", "2026-03-01T10:07:30", "2026-03-01T10:15:00"),
    ("0 9 * * mon-fri", "2026-03-06T09:00:00", "2026-03-09T09:00:00"),  # Fri -> Mon
    ("@hourly", "2026-03-01T10:00:00", "2026-03-01T11:00:00"),
    ("@daily", "2026-03-01T10:00:00", "2026-03-02T00:00:00"),
    ("@weekly", "2026-03-03T00:00:00", "2026-03-08T00:00:00"),  # next Sunday
    ("@monthly", "2026-03-03T00:00:00", "2026-04-01T00:00:00"),
    ("@yearly", "2026-03-03T00:00:00", "2027-01-01T00:00:00"),
    ("0 0 13 * 5", "2026-03-01T00:00:00", "2026-03-06T00:00:00"),  # day 13 OR a Friday
    ("0 0 29 feb *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
    ("30 2 * * *", "2026-03-01T02:30:00", "2026-03-02T02:30:00"),
])
def test_next_times_follow_the_standard_syntax(spec: str, after: str, expected: str) -> None:
    assert cron.parse(spec).next_after(at(after)) == at(expected)


def test_a_time_zone_moves_the_schedule_with_daylight_saving() -> None:
    schedule = cron.parse("TZ=Europe/Berlin 0 9 * * *")
    assert schedule.next_after(at("2026-03-28T12:00:00")) == at("2026-03-29T07:00:00")  # CEST
    assert schedule.next_after(at("2026-03-27T12:00:00")) == at("2026-03-28T08:00:00")  # CET


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("bad", "expected exactly 5 fields, found 1: [bad]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("@often", "unrecognized descriptor: @often"),
    ("TZ=Mars/Base * * * * *", "provided bad location Mars/Base: unknown time zone Mars/Base"),
])
def test_bad_schedules_are_refused_in_robfig_crons_words(spec: str, message: str) -> None:
    with pytest.raises(cron.CronError) as caught:
        cron.parse(spec)
    assert str(caught.value) == message


def cronjob(created: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "tick", "namespace": "default", "uid": "cj",
                         "creationTimestamp": created},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Allow", **spec},
            "status": {}}


def test_the_most_recent_unmet_time_and_the_100_missed_starts_rule() -> None:
    cj = cronjob("2026-03-01T10:00:30Z")
    schedule = cronplan.schedule_of(cj)
    now = at("2026-03-01T10:03:10")
    recent = cronplan.most_recent(cj, schedule, now=now, with_deadline=True)
    assert recent.most_recent == at("2026-03-01T10:03:00") and recent.missed == 3
    assert cronplan.job_name(cj, at("2026-03-01T10:03:00")) == "tick-29539323"
    assert cronplan.next_in(cj, schedule, now=now) == pytest.approx(50.1)
    late = cronplan.most_recent(cj, schedule, now=at("2026-03-01T12:00:00"), with_deadline=True)
    assert late.missed > cronplan.TOO_MANY_MISSED
    assert late.most_recent == at("2026-03-01T12:00:00")
    bounded = cronjob("2026-03-01T10:00:30Z", startingDeadlineSeconds=30)
    recent = cronplan.most_recent(bounded, schedule, now=at("2026-03-01T12:00:40"),
                                  with_deadline=True)
    assert recent.missed == 0 and recent.most_recent is None


def test_history_limits_pick_the_oldest_finished_jobs() -> None:
    def finished(name: str, kind: str, start: str) -> dict[str, Any]:
        return {"metadata": {"name": name}, "status": {"startTime": start, "conditions": [
            {"type": kind, "status": "True"}]}}

    jobs = [finished("a", "Complete", "1"), finished("b", "Complete", "3"),
            finished("c", "Complete", "2"), finished("d", "Failed", "1"),
            finished("e", "Failed", "2"), {"metadata": {"name": "running"}, "status": {}}]
    cj = cronjob("x", successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1)
    assert [j["metadata"]["name"] for j in cronplan.to_clean_up(cj, jobs)] == ["a", "c", "d"]


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.datetime.now(UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


@contextlib.asynccontextmanager
async def controller(tmp_path: Path, clock: FakeClock) -> AsyncIterator[api.ApiClient]:
    config = main.DevkubeConfig(port=0, kubeconfig=tmp_path / "kubeconfig", controllers=False)
    async with main.running(config) as kube, api.ApiClient(
            url=kube.url, token=kube.token, ca_file=kube.ca_file) as client:
        jobs = Informer(client=client, resource=api.JOBS)
        cronjobs = Informer(client=client, resource=api.CRONJOBS)
        ctl = CronJobController(client=client, jobs=jobs, cronjobs=cronjobs, clock=clock)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(t) for t in (
            jobs.run(stop=stop), cronjobs.run(stop=stop), ctl.run(stop=stop))]
        try:
            yield client
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _eventually_jobs(client: api.ApiClient, count: int) -> list[dict[str, Any]]:
    for _ in range(200):
        items = (await client.list(api.JOBS, namespace="default")).get("items") or []
        if len(items) == count:
            return list(items)
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} jobs, have {len(items)}")


async def test_forbid_skips_a_start_while_the_last_job_runs(tmp_path: Path) -> None:
    clock = FakeClock()
    async with controller(tmp_path, clock) as client:
        clock.now += datetime.timedelta(minutes=2)
        await client.create(api.CRONJOBS, {
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"template": {"spec": {
                         "restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "busybox"}]}}}}}},
            namespace="default")
        [first] = await _eventually_jobs(client, 1)
        scheduled = clock.now.replace(second=0, microsecond=0)
        assert first["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
        assert first["metadata"]["annotations"][cronplan.SCHEDULED_TIMESTAMP] == \
            scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert first["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
        got = await client.get(api.CRONJOBS, namespace="default", name="tick")
        assert [a["name"] for a in got["status"]["active"]] == [first["metadata"]["name"]]
        assert got["status"]["lastScheduleTime"] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")

        clock.now += datetime.timedelta(minutes=1)  # the first still runs: Forbid waits
        await client.patch(api.CRONJOBS, namespace="default", name="tick",
                           body={"metadata": {"labels": {"poke": "1"}}})
        await asyncio.sleep(0.5)
        assert len(await _eventually_jobs(client, 1)) == 1

        first["status"] = {"conditions": [{"type": "Complete", "status": "True"}],
                           "completionTime": clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        await client.replace(api.JOBS, first, subresource="status")
        jobs = await _eventually_jobs(client, 2)  # finished: the next start goes ahead
        assert len({j["metadata"]["name"] for j in jobs}) == 2
        got = await client.get(api.CRONJOBS, namespace="default", name="tick")
        assert got["status"]["lastSuccessfulTime"] == first["status"]["completionTime"]
