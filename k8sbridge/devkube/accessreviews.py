"""authorization.k8s.io/v1 reviews: may this user do that, and what may I do here?

Why: ``kubectl auth can-i`` posts a SelfSubjectAccessReview (``--list``: a
SelfSubjectRulesReview), webhook-authorizing kubelets and operators post SubjectAccessReviews
(cluster-wide) or LocalSubjectAccessReviews (one namespace). pkg/registry/authorization
answers them with the same authorizer that guards requests: ``status.allowed`` and the
authorizer's reason, or the rules the user holds in a namespace. They are create-only and not
stored. Refusals use pkg/apis/authorization/validation's words.
"""

from __future__ import annotations

from typing import Any

from k8sbridge.devkube import authz, errors, rbac, satokens

Obj = dict[str, Any]

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
KINDS = {"selfsubjectaccessreviews": "SelfSubjectAccessReview",
         "subjectaccessreviews": "SubjectAccessReview",
         "localsubjectaccessreviews": "LocalSubjectAccessReview",
         "selfsubjectrulesreviews": "SelfSubjectRulesReview"}


def _invalid(kind: str, causes: list[errors.Cause]) -> errors.ApiError:
    return errors.invalid(kind=kind, group=GROUP, name="", causes=causes)


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _attributes(kind: str, spec: Obj, user: str, groups: tuple[str, ...]) -> rbac.Attributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        raise _invalid(kind, [("FieldValueInvalid", "spec.nonResourceAttributes",
                               "Invalid value: cannot be specified in combination with "
                               "resourceAttributes")])
    if resource is None and non_resource is None:
        raise _invalid(kind, [("FieldValueInvalid", "spec.resourceAttributes",
                               'Invalid value: "null": exactly one of nonResourceAttributes or '
                               "resourceAttributes must be specified")])
    if isinstance(resource, dict):
        return rbac.Attributes(
            user=user, groups=groups, verb=str(resource.get("verb") or ""),
            resource_request=True, group=str(resource.get("group") or ""),
            version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=str(resource.get("namespace") or ""), name=str(resource.get("name") or ""))
    if isinstance(non_resource, dict):
        return rbac.Attributes(user=user, groups=groups, verb=str(non_resource.get("verb") or ""),
                               resource_request=False, path=str(non_resource.get("path") or ""))
    raise errors.bad_request(f"{kind} spec attributes must be objects")


def review(authorizer: authz.Authorizer, *, plural: str, body: Any, user: satokens.User,
           namespace: str) -> Obj:
    """The answered review (201) for a POST to ``plural`` (``namespace`` from the URL)."""
    kind = KINDS[plural]
    if not isinstance(body, dict) or body.get("kind") not in (None, kind):
        raise errors.bad_request(f"the body must be a {kind}")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    meta = dict(body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}
    answer: Obj = {"kind": kind, "apiVersion": API_VERSION, "metadata": meta, "spec": spec}
    if plural == "selfsubjectrulesreviews":
        answer["status"] = rules_review(authorizer, user, str(spec.get("namespace") or ""))
        return answer
    if plural.startswith("self"):  # the spec has only the attributes: the caller is asked
        who, groups = user.username, user.groups
    else:
        who, groups = str(spec.get("user") or ""), tuple(_strings(spec.get("groups")))
        if not who and not groups:
            raise _invalid(kind, [("FieldValueInvalid", "spec.user", 'Invalid value: "": at '
                                   "least one of user or group must be specified")])
    if plural == "localsubjectaccessreviews":
        meta["namespace"] = meta.get("namespace") or namespace
        if meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        if spec.get("nonResourceAttributes") is not None:
            raise _invalid(kind, [("FieldValueInvalid", "spec.nonResourceAttributes",
                                   "Invalid value: disallowed on this kind of request")])
        attrs = spec.get("resourceAttributes")
        if isinstance(attrs, dict) and attrs.get("namespace", "") != namespace:
            raise _invalid(kind, [("FieldValueInvalid", "spec.resourceAttributes.namespace",
                                   f'Invalid value: "{attrs.get("namespace", "")}": must match '
                                   "metadata.namespace")])
    allowed, reason = authorizer.authorize(_attributes(kind, spec, who, groups))
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    answer["status"] = status
    return answer


def rules_review(authorizer: authz.Authorizer, user: satokens.User, namespace: str) -> Obj:
    """SelfSubjectRulesReview's status: the rules RulesFor gives, split as the API shows."""
    if not namespace:
        raise errors.bad_request("no namespace on request")
    rules, problems = authorizer.rules_for(user.username, user.groups, namespace)
    resource_rules: list[Obj] = []
    url_rules: list[Obj] = []
    for rule in rules:
        raw = rule.raw
        if raw.get("resources"):
            entry: Obj = {"verbs": _strings(raw.get("verbs")),
                          "apiGroups": _strings(raw.get("apiGroups")),
                          "resources": _strings(raw.get("resources"))}
            if raw.get("resourceNames"):
                entry["resourceNames"] = _strings(raw.get("resourceNames"))
            resource_rules.append(entry)
        if raw.get("nonResourceURLs"):
            url_rules.append({"verbs": _strings(raw.get("verbs")),
                              "nonResourceURLs": _strings(raw.get("nonResourceURLs"))})
    status: Obj = {"resourceRules": resource_rules, "nonResourceRules": url_rules,
                   "incomplete": False}
    if problems:
        status["evaluationError"] = problems[0] if len(problems) == 1 else (
            "[" + ", ".join(problems) + "]")
    return status
