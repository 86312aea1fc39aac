"""policy/v1 PodDisruptionBudgets in the API server: defaults, validation and the eviction verdict.

Why: ``kubectl drain`` and every cluster tool that evicts pods rely on the eviction subresource
refusing (429) when a budget allows no disruption, so the decision must be the apiserver's: the
budgets matching the pod, the unhealthy-pod policy, ``observedGeneration``, ``disruptionsAllowed``
and the ``disruptedPods`` the eviction records for the disruption controller. The functions here
are pure; ``subresources.evict`` does the reads and writes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from k8sbridge.devkube import apps, errors, selectors

Obj = dict[str, Any]
Cause = errors.Cause

GROUP = "policy"
PLURAL = "poddisruptionbudgets"
POLICIES = ("AlwaysAllow", "IfHealthyBudget")
MAX_DISRUPTED_PODS = 2000  # eviction.go's MaxDisruptedPodSize
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE = ("This pod has more than one PodDisruptionBudget, which the eviction subresource "
            "does not support.")


def default_pdb(obj: Obj, *, create: bool) -> None:
    """A new budget's status is the zero PodDisruptionBudgetStatus (its ints are not omitempty)."""
    if create:
        obj["status"] = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                         "expectedPods": 0}


def causes(obj: Obj) -> list[Cause]:
    """ValidatePodDisruptionBudgetSpec's problems, in its order and words."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    found: list[Cause] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        found.append(("FieldValueInvalid", "spec",
                      "Invalid value: \"object\": minAvailable and maxUnavailable cannot be "
                      "both set"))
    for field in ("minAvailable", "maxUnavailable"):
        if spec.get(field) is not None:
            found += apps._int_or_percent(spec[field], f"spec.{field}")[1]
    selector = spec.get("selector")
    if selector is not None:
        try:
            selectors.from_label_selector_object(selector if isinstance(selector, dict) else {})
        except ValueError as e:
            found.append(("FieldValueInvalid", "spec.selector", f"Invalid value: {e}"))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in POLICIES:
        found.append(("FieldValueNotSupported", "spec.unhealthyPodEvictionPolicy",
                      f'Unsupported value: "{policy}": supported values: '
                      + ", ".join(f'"{p}"' for p in POLICIES)))
    return found


def selects(pdb: Obj, pod: Obj) -> bool:
    """Whether ``pdb`` covers ``pod``: a missing selector selects nothing, an empty one (v1)
    every pod of the namespace."""
    raw = (pdb.get("spec") or {}).get("selector")
    if not isinstance(raw, dict):
        return False
    try:
        selector = selectors.from_label_selector_object(raw)
    except ValueError:
        return False
    return selector.matches((pod.get("metadata") or {}).get("labels") or {})


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def too_many_requests(message: str, *, retry_after: int, cause: str) -> errors.ApiError:
    details: Any = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    return errors.ApiError(code=429, reason="TooManyRequests", message=message, details=details)


def internal_error(message: str) -> errors.ApiError:
    return errors.ApiError(code=500, reason="InternalError",
                           message=f"Internal error occurred: {message}",
                           details={"causes": [{"message": message}]})


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """What an eviction does: ``budget`` is the PDB to write back (with the decremented
    ``disruptionsAllowed`` and the pod in ``disruptedPods``), None when no budget is charged."""

    budget: Obj | None


def can_ignore_budgets(pod: Obj) -> bool:
    """Pods that are finished, not yet running or already going are evicted without asking."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) or (
        (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending"))


def decide(pod: Obj, budgets: list[Obj], *, stamp: str) -> Verdict:
    """eviction.go's decision for ``pod`` given its namespace's ``budgets``; raises the
    apiserver's error when the eviction is refused. ``stamp``: ``now`` as RFC 3339."""
    if can_ignore_budgets(pod):
        return Verdict(budget=None)
    matching = [b for b in budgets if selects(b, pod)]
    if not matching:
        return Verdict(budget=None)
    if len(matching) > 1:
        raise internal_error(MULTIPLE)
    pdb = matching[0]
    spec = pdb.get("spec") or {}
    status = pdb.get("status") or {}
    name = str((pdb.get("metadata") or {}).get("name", ""))
    if not is_ready(pod):
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return Verdict(budget=None)
        desired = int(status.get("desiredHealthy", 0))
        if int(status.get("currentHealthy", 0)) >= desired and desired > 0:
            return Verdict(budget=None)
    return Verdict(budget=_charge(pdb, name=name, stamp=stamp))


def _charge(pdb: Obj, *, name: str, stamp: str) -> Obj:
    """checkAndDecrement: the budget after one more disruption, or the refusal."""
    status = pdb.get("status") or {}
    generation = int((pdb.get("metadata") or {}).get("generation", 0))
    if int(status.get("observedGeneration", 0)) < generation:
        raise too_many_requests(VIOLATION, retry_after=10, cause=(
            f"The disruption budget {name} is still being processed by the server."))
    allowed = int(status.get("disruptionsAllowed", 0))
    if allowed < 0:
        raise errors.forbidden(plural=PLURAL, group=GROUP, name=name,
                               why="pdb disruptions allowed is negative")
    disrupted = dict(status.get("disruptedPods") or {})
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise errors.forbidden(plural=PLURAL, group=GROUP, name=name, why=(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
    if allowed == 0:
        raise too_many_requests(VIOLATION, retry_after=0, cause=(
            f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy pods "
            f"and has {status.get('currentHealthy', 0)} currently"))
    new_status = {**status, "disruptionsAllowed": allowed - 1}
    if allowed - 1 == 0:
        new_status["conditions"] = allowed_condition(
            status.get("conditions") or [], allowed=False, reason="InsufficientPods",
            generation=0, stamp=stamp)
    return {**pdb, "status": new_status}


def record_disruption(pdb: Obj, pod_name: str, *, stamp: str) -> Obj:
    status = dict(pdb.get("status") or {})
    status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: stamp}
    return {**pdb, "status": status}


def allowed_condition(conditions: list[Obj], *, allowed: bool, reason: str, generation: int,
                      stamp: str, message: str = "") -> list[Obj]:
    """The ``DisruptionAllowed`` condition set as ``pdb.UpdateDisruptionAllowedCondition`` does
    (``meta.SetStatusCondition``: the transition time moves only when the status flips; the
    controller leaves the condition's ``observedGeneration`` at 0, i.e. absent)."""
    wanted = "True" if allowed else "False"
    old = next((c for c in conditions if c.get("type") == "DisruptionAllowed"), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == wanted else stamp
    new: Obj = {"type": "DisruptionAllowed", "status": wanted, "lastTransitionTime": since,
                "reason": reason, "message": message}
    if generation:
        new["observedGeneration"] = generation
    return [c for c in conditions if c.get("type") != "DisruptionAllowed"] + [new]


def disruption_target(stamp: str) -> Obj:
    """The condition an evicted pod carries (the apiserver adds it before deleting)."""
    return {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": stamp, "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting"}
