"""Service-account tokens: the TokenRequest API and the authenticator that checks the tokens.

Why: pods (through their kubelet) and ``kubectl create token`` get short-lived JWTs from
``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token``, and kube-apiserver then
authenticates them as ``system:serviceaccount:NS:NAME``. This module is what
``pkg/registry/core/serviceaccount/storage/token.go`` and ``pkg/serviceaccount/{claims,jwt}.go``
do, with their refusals and words: expirationSeconds of at least 10 minutes, tokens bound to a
Pod, Secret or Node whose uid must match, the API server's audiences by default, the 3607 s
admission tokens extended to a year with a ``warnafter`` (``--service-account-extend-token-
expiration``), and a token that stops authenticating once its ServiceAccount or bound object
is gone (or replaced under the same name). No I/O: objects come from ``lookup`` (the store),
times from ``now``.

    AuthFailed    a token of ours that does not authenticate (the message is the reason)
"""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from k8sbridge.devkube import errors, sakeys

Obj = dict[str, Any]
Lookup = Callable[[str, str, str], "Obj | None"]  # (plural, namespace, name) -> stored object

ISSUER = "https://kubernetes.default.svc.cluster.local"  # kubeadm's --service-account-issuer
API_AUDIENCES: tuple[str, ...] = (ISSUER,)  # --api-audiences defaults to the issuer
DEFAULT_SECONDS = 3600  # SetDefaults_TokenRequestSpec
MIN_SECONDS = 10 * 60
MAX_SECONDS = 1 << 32
WARN_ONLY_SECONDS = 60 * 60 + 7  # what the ServiceAccount admission asks for
EXTENSION_SECONDS = 24 * 365 * 60 * 60  # how long such a token really lives
LEEWAY = 60  # go-jose's DefaultLeeway

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
SA_GROUP = "system:serviceaccounts"
AUTHENTICATED = "system:authenticated"
EXTRA_PREFIX = "authentication.kubernetes.io/"
NOT_OURS = "invalid bearer token"  # what kube-apiserver says of a token nobody recognises

BINDABLE = ("Pod", "Secret", "Node")
_PLURAL = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


class AuthFailed(Exception):
    """One of our tokens that does not (or no longer) authenticate."""


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def info(self) -> Obj:
        """``authentication.k8s.io/v1 UserInfo``."""
        out: Obj = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


def username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def rfc3339(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


# --------------------------------------------------------------------------------------------
# TokenRequest


def _json_type(value: Any) -> str:
    """What Go's encoding/json calls a JSON value in its unmarshal errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _undecodable(field: str, got: Any, want: str) -> errors.ApiError:
    return errors.bad_request(
        'TokenRequest in version "v1" cannot be handled as a TokenRequest: json: cannot '
        f"unmarshal {_json_type(got)} into Go struct field {field} of type {want}")


def _shape(body: Any) -> tuple[Obj, Obj, Obj | None]:
    """(metadata, spec, boundObjectRef) of a decoded body, or the decoder's 400."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    if body.get("apiVersion") not in (None, API_VERSION):
        raise errors.bad_request(
            f"the API version in the data ({body.get('apiVersion')}) does not match the "
            f"expected API version ({API_VERSION})")
    if body.get("kind") not in (None, "TokenRequest"):
        raise errors.bad_request(
            f"the kind in the data ({body.get('kind')}) does not match the expected kind "
            "(TokenRequest)")
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    if not isinstance(meta, dict):
        raise _undecodable("TokenRequest.metadata", meta, "v1.ObjectMeta")
    for field in ("name", "namespace", "uid"):
        if meta.get(field) is not None and not isinstance(meta[field], str):
            raise _undecodable(f"ObjectMeta.metadata.{field}", meta[field], "string")
    if not isinstance(spec, dict):
        raise _undecodable("TokenRequest.spec", spec, "v1.TokenRequestSpec")
    audiences = spec.get("audiences")
    if audiences is not None and (not isinstance(audiences, list)
                                  or not all(isinstance(a, str) for a in audiences)):
        raise _undecodable("TokenRequestSpec.spec.audiences", audiences, "string")
    seconds = spec.get("expirationSeconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
        raise _undecodable("TokenRequestSpec.spec.expirationSeconds", seconds, "int64")
    ref = spec.get("boundObjectRef")
    if ref is not None:
        if not isinstance(ref, dict):
            raise _undecodable("TokenRequestSpec.spec.boundObjectRef", ref,
                               "v1.BoundObjectReference")
        for field in ("kind", "apiVersion", "name", "uid"):
            if ref.get(field) is not None and not isinstance(ref[field], str):
                raise _undecodable(f"BoundObjectReference.spec.boundObjectRef.{field}",
                                   ref[field], "string")
    return meta, spec, ref


def _invalid(name: str, field: str, value: Any, why: str) -> errors.ApiError:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return errors.invalid(kind="TokenRequest", group=GROUP, name=name, causes=[
        ("FieldValueInvalid", field, f"Invalid value: {shown}: {why}")])


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def token_request(*, key: sakeys.SigningKey, lookup: Lookup, namespace: str, name: str,
                  body: Any, now: float, extend_expiration: bool = True) -> Obj:
    """The answered TokenRequest (status.token set) for ``serviceaccounts/NAME/token``."""
    meta, spec, ref = _shape(body)
    if meta.get("name") and meta["name"] != name:
        raise _invalid(name, "metadata.name", meta["name"],
                       "must match the service account name if specified")
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise _invalid(name, "metadata.namespace", meta["namespace"],
                       "must match the service account namespace if specified")
    account = lookup("serviceaccounts", namespace, name)
    if account is None:
        raise errors.not_found(plural="serviceaccounts", group="", name=name)
    sa_uid = str(_meta(account).get("uid", ""))
    if meta.get("uid") and meta["uid"] != sa_uid:
        raise errors.conflict(
            plural="TokenRequest", group=GROUP, name=name,
            why=f"the UID in the token request ({meta['uid']}) does not match the UID of the "
            f"service account ({sa_uid})")
    audiences = list(spec.get("audiences") or API_AUDIENCES)
    seconds = int(spec["expirationSeconds"]) if spec.get("expirationSeconds") is not None \
        else DEFAULT_SECONDS
    if seconds < MIN_SECONDS:
        raise _invalid("", "spec.expirationSeconds", seconds,
                       "may not specify a duration less than 10 minutes")
    if seconds > MAX_SECONDS:
        raise _invalid("", "spec.expirationSeconds", seconds,
                       "may not specify a duration larger than 2^32 seconds")
    bound: dict[str, Obj] = {}  # "pod"/"secret"/"node" -> {"name", "uid"}
    if ref is not None:
        bound = _bind(lookup=lookup, namespace=namespace, name=name, ref=ref)
    expires = seconds
    warn_after = 0
    if (extend_expiration and "pod" in bound and seconds == WARN_ONLY_SECONDS
            and set(audiences) <= set(API_AUDIENCES)):
        warn_after, expires = seconds, EXTENSION_SECONDS
    private: Obj = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa_uid},
                    **bound}
    if warn_after:
        private["warnafter"] = int(now) + warn_after
    claims: Obj = {
        "iss": ISSUER, "sub": username(namespace, name), "aud": audiences,
        "iat": int(now), "nbf": int(now), "exp": int(now) + expires,
        "jti": str(uuid.uuid4()), "kubernetes.io": private,
    }
    return {
        "kind": "TokenRequest", "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": namespace, "uid": sa_uid,
                     "creationTimestamp": rfc3339(now)},
        "spec": {"audiences": audiences, "expirationSeconds": seconds,
                 "boundObjectRef": dict(ref) if ref is not None else None},
        "status": {"token": key.sign(claims), "expirationTimestamp": rfc3339(now + seconds)},
    }


def _bind(*, lookup: Lookup, namespace: str, name: str, ref: Obj) -> dict[str, Obj]:
    kind = str(ref.get("kind") or "")
    group, version = _split_api_version(str(ref.get("apiVersion") or ""))
    if group or kind not in BINDABLE:
        raise errors.bad_request(
            f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    ref_name = str(ref.get("name") or "")
    plural = _PLURAL[kind]
    obj = lookup(plural, "" if kind == "Node" else namespace, ref_name)
    if obj is None:
        raise errors.not_found(plural=plural, group="", name=ref_name)
    uid = str(_meta(obj).get("uid", ""))
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict(
            plural=kind, group="", name=ref_name,
            why=f"the UID in the bound object reference ({ref['uid']}) does not match the "
            "UID in record. The object might have been deleted and then recreated")
    out: dict[str, Obj] = {kind.lower(): {"name": ref_name, "uid": uid}}
    if kind == "Pod":
        if (obj.get("spec") or {}).get("serviceAccountName") != name:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{name}" to pod running with different '
                "serviceaccount name.")
        node_name = str((obj.get("spec") or {}).get("nodeName") or "")
        if node_name:  # ServiceAccountTokenPodNodeInfo: the node, by name even if gone
            node = lookup("nodes", "", node_name)
            out["node"] = {"name": node_name}
            if node is not None:
                out["node"]["uid"] = str(_meta(node).get("uid", ""))
    return out


# --------------------------------------------------------------------------------------------
# Authentication


def _audiences(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _go_quote(values: Sequence[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _gone(obj: Obj | None, now: float) -> bool:
    """Deleted, or deleting since before now - leeway (claims.go's invalidIfDeletedBefore)."""
    if obj is None:
        return True
    stamp = _meta(obj).get("deletionTimestamp")
    if not stamp:
        return False
    when = datetime.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    return when < now - LEEWAY


def authenticate(*, key: sakeys.SigningKey, lookup: Lookup, token: str, now: float,
                 audiences: Sequence[str] = ()) -> tuple[User, list[str]]:
    """(user, audiences the token is good for) of one of our tokens.

    ``sakeys.TokenError``: not a token of ours (another issuer, another key, not a JWT).
    ``AuthFailed``: ours, but expired, for other audiences, or its objects are gone."""
    claims = key.verify(token)
    if claims.get("iss") != ISSUER:
        raise sakeys.TokenError("issued by someone else")
    wanted = list(audiences) or list(API_AUDIENCES)
    presented = _audiences(claims.get("aud")) or list(API_AUDIENCES)
    good = [a for a in presented if a in wanted]
    if not good:
        raise AuthFailed(f"token audiences {_go_quote(presented)} is invalid for the target "
                         f"audiences {_go_quote(wanted)}")
    times = {k: claims.get(k) for k in ("nbf", "exp", "iat")}
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
           for v in times.values()):
        raise AuthFailed("service account token claims could not be validated due to "
                         "unexpected validation error")
    if times["nbf"] is not None and now + LEEWAY < times["nbf"]:
        raise AuthFailed("service account token is not valid yet")
    if times["exp"] is not None and now - LEEWAY > times["exp"]:
        raise AuthFailed("service account token has expired")
    if times["iat"] is not None and now + LEEWAY < times["iat"]:
        raise AuthFailed("service account token is issued in the future")
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        raise AuthFailed("service account token claims could not be validated due to "
                         "unexpected validation error")
    namespace = str(private.get("namespace") or "")
    refs = {k: private.get(k) if isinstance(private.get(k), dict) else None
            for k in ("serviceaccount", "pod", "secret", "node")}
    sa_ref = refs["serviceaccount"] or {}
    sa_name, sa_uid = str(sa_ref.get("name") or ""), str(sa_ref.get("uid") or "")
    account = lookup("serviceaccounts", namespace, sa_name)
    if account is None:
        raise AuthFailed(f'serviceaccounts "{sa_name}" not found')
    if _gone(account, now):
        raise AuthFailed(f"service account {namespace}/{sa_name} has been deleted")
    if str(_meta(account).get("uid")) != sa_uid:
        raise AuthFailed(f"service account UID ({_meta(account).get('uid')}) does not match "
                         f"claim ({sa_uid})")
    extra: list[tuple[str, tuple[str, ...]]] = []
    for kind in ("secret", "pod"):
        ref = refs[kind]
        if ref is None:
            continue
        obj = lookup(f"{kind}s", namespace, str(ref.get("name") or ""))
        if obj is None or _gone(obj, now):
            raise AuthFailed("service account token has been invalidated")
        if str(_meta(obj).get("uid")) != str(ref.get("uid") or ""):
            raise AuthFailed(f"{kind} UID ({_meta(obj).get('uid')}) does not match service "
                             f"account {kind} ref claim ({ref.get('uid')})")
        if kind == "pod":
            extra += [(EXTRA_PREFIX + "pod-name", (str(ref.get("name")),)),
                      (EXTRA_PREFIX + "pod-uid", (str(ref.get("uid")),))]
    node = refs["node"]
    if node is not None and refs["pod"] is None:
        found = lookup("nodes", "", str(node.get("name") or ""))
        if found is None:
            raise AuthFailed("service account token has been invalidated")
        if str(_meta(found).get("uid")) != str(node.get("uid") or ""):
            raise AuthFailed(f"node UID ({_meta(found).get('uid')}) does not match service "
                             f"account node ref claim ({node.get('uid')})")
    if isinstance(claims.get("jti"), str) and claims["jti"]:
        extra.append((EXTRA_PREFIX + "credential-id", (f"JTI={claims['jti']}",)))
    if node is not None and node.get("name"):
        extra.append((EXTRA_PREFIX + "node-name", (str(node["name"]),)))
        if node.get("uid"):
            extra.append((EXTRA_PREFIX + "node-uid", (str(node["uid"]),)))
    user = User(username=username(namespace, sa_name), uid=sa_uid,
                groups=(SA_GROUP, f"{SA_GROUP}:{namespace}", AUTHENTICATED),
                extra=tuple(sorted(extra)))
    return user, good


# --------------------------------------------------------------------------------------------
# OIDC discovery (ServiceAccountIssuerDiscovery)


def openid_configuration(*, jwks_uri: str, algorithm: str) -> Obj:
    return {"issuer": ISSUER, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [algorithm]}
