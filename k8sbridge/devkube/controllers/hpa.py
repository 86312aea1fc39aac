"""The horizontal pod autoscaler controller: scales Deployments, ReplicaSets, StatefulSets and
ReplicationControllers through their ``/scale`` subresource from the pods' resource metrics.

As kube-controller-manager's ``pkg/controller/podautoscaler``: every HPA is reconciled every
sync period (15 s); the target's scale gives the current replicas and the pod selector; the
pods' usage comes from ``metrics.k8s.io/v1beta1`` PodMetrics (what metrics-server, or here
devkube from the kubelets, serves) and their requests from the pods; ``hpaplan`` decides. The
status carries currentReplicas, desiredReplicas, currentMetrics, lastScaleTime and the
AbleToScale / ScalingActive / ScalingLimited conditions with kube's reasons.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import logging
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube.controllers import base, errors, hpaplan
from k8sbridge.devkube.controllers import client as api
from k8sbridge.devkube.controllers import pods as podfacts
from k8sbridge.devkube.controllers.events import EventRecorder
from k8sbridge.devkube.controllers.informer import Informer
from k8sbridge.devkube.controllers.raw import ObjectKey, RawObject, key_of, split_key
from k8sbridge.devkube.controllers.workqueue import WorkQueue

log = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
HPAS = api.Resource(group_version="autoscaling/v2", plural="horizontalpodautoscalers",
                    kind="HorizontalPodAutoscaler")
TARGETS = {(r.group_version.rpartition("/")[0], r.kind): r for r in (
    api.DEPLOYMENTS, api.REPLICASETS, api.STATEFULSETS, api.REPLICATIONCONTROLLERS)}
SYNC_PERIOD = 15.0
METRICS = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
_SUFFIXES = {"n": decimal.Decimal("1e-9"), "u": decimal.Decimal("1e-6"),
             "m": decimal.Decimal("1e-3"), "": decimal.Decimal(1), "k": decimal.Decimal(10**3),
             "M": decimal.Decimal(10**6), "G": decimal.Decimal(10**9),
             "T": decimal.Decimal(10**12), "Ki": decimal.Decimal(2**10),
             "Mi": decimal.Decimal(2**20), "Gi": decimal.Decimal(2**30),
             "Ti": decimal.Decimal(2**40)}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def quantity(value: Any, *, milli: bool) -> int:
    """A resource quantity in millis (cpu) or units (memory), rounded up."""
    text = str(value).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            number, unit = text[: -len(suffix)], _SUFFIXES[suffix]
            break
    else:
        number, unit = text, decimal.Decimal(1)
    amount = decimal.Decimal(number) * unit * (1000 if milli else 1)
    return int(amount.to_integral_value(rounding=decimal.ROUND_CEILING))


def _show(amount: int, *, milli: bool) -> str:
    return f"{amount}m" if milli else str(amount)


def _condition(kind: str, ok: bool, reason: str, message: str, stamp: str,
               old: list[dict[str, Any]]) -> dict[str, Any]:
    before = next((c for c in old if c.get("type") == kind), None)
    status = "True" if ok else "False"
    since = before["lastTransitionTime"] if before and before.get("status") == status else stamp
    return {"type": kind, "status": status, "lastTransitionTime": since, "reason": reason,
            "message": message}


class HorizontalController:
    def __init__(self, *, client: api.ApiClient, hpas: Informer, recorder: EventRecorder,
                 period: float = SYNC_PERIOD, clock: Clock = _now) -> None:
        self.client = client
        self.hpas = hpas
        self.recorder = recorder
        self.period = period
        self.clock = clock
        self.history: dict[ObjectKey, hpaplan.History] = {}
        self.queue = WorkQueue(name="horizontalpodautoscaling")
        hpas.add_handler(self._on_hpa)

    def _on_hpa(self, old: RawObject | None, new: RawObject | None) -> None:
        if new is not None and (old is None or old.get("spec") != new.get("spec")):
            self.queue.add(key_of(new))
        elif new is None and old is not None:
            self.history.pop(key_of(old), None)

    async def run(self, *, stop: asyncio.Event) -> None:
        try:
            await base.work(queue=self.queue, sync=self.sync, stop=stop, informers=[self.hpas])
        finally:
            self.queue.close()

    async def sync(self, key: ObjectKey) -> float | None:
        hpa = self.hpas.get(key)
        if hpa is None:
            return None
        now = self.clock()
        stamp = podfacts.format_time(now)
        old_conditions = list((hpa.get("status") or {}).get("conditions") or [])
        status: dict[str, Any] = {
            k: v for k, v in (hpa.get("status") or {}).items() if k in ("lastScaleTime",
                                                                         "currentMetrics")}
        status["observedGeneration"] = (hpa.get("metadata") or {}).get("generation", 1)
        conditions: list[dict[str, Any]] = []
        spec = hpa.get("spec") or {}
        ns, _ = split_key(key)
        ref = spec.get("scaleTargetRef") or {}
        try:
            scale, target = await self._scale(str(ns), ref)
        except errors.ControllerError as e:
            message = ("the HPA controller was unable to get the target's current scale: "
                       f"{_message(e)}")
            conditions.append(_condition("AbleToScale", False, "FailedGetScale", message,
                                         stamp, old_conditions))
            self.recorder.record(hpa, reason="FailedGetScale", message=_message(e),
                                 type_="Warning")
            status.setdefault("currentReplicas", 0)
            status.setdefault("desiredReplicas", 0)
            await self._write(hpa, {**status, "conditions": conditions})
            return self.period
        current = int((scale.get("spec") or {}).get("replicas", 0))
        status["currentReplicas"] = int((scale.get("status") or {}).get("replicas", 0))
        desired, limited, rescale_reason = current, None, ""
        minimum = int(spec.get("minReplicas", 1))
        maximum = int(spec.get("maxReplicas", 1))
        able = ("SucceededGetScale",
                "the HPA controller was able to get the target's current scale")
        active: tuple[bool, str, str] | None
        if current == 0 and minimum != 0:
            active = (False, "ScalingDisabled",
                      "scaling is disabled since the replica count of the target is zero")
        elif current > maximum or current < minimum:
            desired = maximum if current > maximum else minimum
            active = None  # ScalingActive stays as the last metrics left it
            rescale_reason = "Current number of replicas " + (
                "above Spec.MaxReplicas" if current > maximum else "below Spec.MinReplicas")
            limited = (True, "TooManyReplicas" if current > maximum else "TooFewReplicas",
                       "the desired replica count is more than the maximum replica count"
                       if current > maximum else
                       "the desired replica count is less than the minimum replica count")
        else:
            try:
                proposed, metrics, described = await self._from_metrics(
                    str(ns), spec, scale, current)
            except (hpaplan.MetricError, errors.ControllerError) as e:
                reason, message = "FailedGetResourceMetric", _message(e)
                conditions.append(_condition("AbleToScale", True, *able, stamp,
                                             old_conditions))
                conditions.append(_condition(
                    "ScalingActive", False, reason,
                    f"the HPA was unable to compute the replica count: {message}", stamp,
                    old_conditions))
                self.recorder.record(hpa, reason=reason, message=message, type_="Warning")
                status["desiredReplicas"] = current
                await self._write(hpa, {**status, "conditions": conditions})
                return self.period
            status["currentMetrics"] = metrics
            active = (True, "ValidMetricFound", "the HPA was able to successfully calculate a "
                      f"replica count from {described}")
            history = self.history.setdefault(key, hpaplan.History())
            if spec.get("behavior") is None:
                decision = hpaplan.normalize(history=history, current=current, desired=proposed,
                                             min_replicas=minimum, max_replicas=maximum, now=now)
            else:
                decision = hpaplan.normalize_with_behavior(
                    history=history, behavior=spec["behavior"], current=current,
                    desired=proposed, min_replicas=minimum, max_replicas=maximum, now=now)
            desired = decision.replicas
            able = (decision.able_reason, decision.able_message)
            limited = (decision.limited, decision.limited_reason, decision.limited_message)
        conditions.append(_condition("AbleToScale", True, *able, stamp, old_conditions))
        if active is not None:
            conditions.append(_condition("ScalingActive", *active, stamp, old_conditions))
        else:
            conditions += [c for c in old_conditions if c.get("type") == "ScalingActive"]
        if limited is not None:
            conditions.append(_condition("ScalingLimited", *limited, stamp, old_conditions))
        if desired != current:
            try:
                await self.client.patch(target, namespace=ns, name=str(ref.get("name")),
                                        body={"spec": {"replicas": desired}},
                                        subresource="scale")
            except errors.ControllerError as e:
                conditions[0] = _condition("AbleToScale", False, "FailedUpdateScale",
                                           f"the HPA controller was unable to update the "
                                           f"target scale: {e}", stamp, old_conditions)
                await self._write(hpa, {**status, "desiredReplicas": current,
                                        "conditions": conditions})
                return self.period
            hpaplan.record_scale(self.history.setdefault(key, hpaplan.History()), old=current,
                                 new=desired, now=now, behavior=spec.get("behavior"))
            status["lastScaleTime"] = stamp
            why = rescale_reason or (
                f"All metrics {'above' if desired > current else 'below'} target")
            self.recorder.record(hpa, reason="SuccessfulRescale",
                                 message=f"New size: {desired}; reason: {why}")
        status["desiredReplicas"] = desired
        await self._write(hpa, {**status, "conditions": conditions})
        return self.period

    async def _scale(self, namespace: str, ref: dict[str, Any]) -> tuple[RawObject, api.Resource]:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        target = TARGETS.get((group, str(ref.get("kind"))))
        if target is None:
            raise errors.ControllerError(f"no matches for kind \"{ref.get('kind')}\" in "
                                         f"group \"{group}\"")
        scale = await self.client.request("GET", target.path(
            namespace=namespace, name=str(ref.get("name")), subresource="scale"))
        return scale, target

    async def _from_metrics(self, namespace: str, spec: dict[str, Any], scale: RawObject,
                            current: int) -> tuple[int, list[dict[str, Any]], str]:
        selector = str((scale.get("status") or {}).get("selector") or "")
        params = {"labelSelector": selector}
        pods = list((await self.client.list(api.PODS, namespace=namespace,
                                            params=params)).get("items") or [])
        reply = await self.client.request("GET", METRICS.format(namespace=namespace),
                                          params=params)
        usage_by_pod = {str((m.get("metadata") or {}).get("name")): m
                        for m in (reply or {}).get("items") or []}
        best = -1
        statuses: list[dict[str, Any]] = []
        described = ""
        for metric in spec.get("metrics") or []:
            if metric.get("type") != "Resource":
                continue
            resource = metric.get("resource") or {}
            name = str(resource.get("name", "cpu"))
            milli = name == "cpu"
            target = resource.get("target") or {}
            utilization = target.get("type") == "Utilization"
            if not usage_by_pod:
                raise errors.ControllerError(
                    f"failed to get {name} utilization: unable to get metrics for resource "
                    f"{name}: no metrics returned from resource metrics API")
            samples = [self._sample(p, usage_by_pod, name, milli=milli) for p in pods]
            goal = int(target["averageUtilization"]) if utilization else quantity(
                target.get("averageValue", 0), milli=milli)
            try:
                replicas, shown = hpaplan.replicas_for(
                    current=current, samples=samples, target=goal, utilization=utilization,
                    resource=name)
            except hpaplan.MetricError as e:
                what = "utilization" if utilization else "usage"
                raise errors.ControllerError(f"failed to get {name} {what}: {e}") from e
            measured = [s for s in samples if s.usage is not None and not s.ignored]
            average = sum(s.usage or 0 for s in measured) // max(1, len(measured))
            current_metric: dict[str, Any] = {"averageValue": _show(average, milli=milli)}
            if utilization:
                current_metric["averageUtilization"] = shown
            statuses.append({"type": "Resource", "resource": {"name": name,
                                                              "current": current_metric}})
            if replicas > best:
                best = replicas
                described = f"{name} resource utilization (percentage of request)" \
                    if utilization else f"{name} resource"
        if best < 0:
            raise errors.ControllerError("invalid metrics (no resource metrics)")
        return best, statuses, described

    def _sample(self, pod: RawObject, usage_by_pod: dict[str, RawObject], name: str, *,
                milli: bool) -> hpaplan.PodSample:
        pod_name = str((pod.get("metadata") or {}).get("name"))
        request: int | None = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            value = ((c.get("resources") or {}).get("requests") or {}).get(name)
            if value is None:
                request = None
                break
            request = (request or 0) + quantity(value, milli=milli)
        found = usage_by_pod.get(pod_name)
        usage = None if found is None else sum(
            quantity((c.get("usage") or {}).get(name, 0), milli=milli)
            for c in found.get("containers") or [])
        phase = podfacts.phase(pod)
        return hpaplan.PodSample(
            name=pod_name, usage=usage, request=request, ready=podfacts.is_ready(pod),
            ignored=podfacts.is_terminating(pod) or phase == "Failed",
            pending=phase == "Pending")

    async def _write(self, hpa: RawObject, status: dict[str, Any]) -> None:
        def mutate(obj: RawObject) -> bool:
            if _without_times(obj.get("status") or {}) == _without_times(status):
                return False
            obj["status"] = status
            return True

        try:
            await base.update(client=self.client, resource=HPAS, informer=self.hpas,
                              current=hpa, mutate=mutate, subresource="status")
        except errors.NotFound:
            return


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    return {**status, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                     for c in status.get("conditions") or []]}


def _message(e: Exception) -> str:
    """An API error's Status message (what kube puts in the condition), else the text."""
    return str(getattr(e, "message", "") or e)
