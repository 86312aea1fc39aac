"""Who a request is: devkube's own bearer token, or a service-account token it issued.

Why: kube-apiserver's authenticator chain accepts several kinds of bearer tokens; devkube's are
its admin token (``devkube-admin``, ``system:masters``) and the service-account JWTs of
``satokens``. The same answer serves ``TokenReview`` (kubelets with webhook authentication ask
it), ``SelfSubjectReview`` (``kubectl auth whoami``) and the OIDC discovery documents of the
service-account issuer (``/.well-known/openid-configuration``, ``/openid/v1/jwks``).
What an authenticated user may do is decided afterwards, by ``authz`` (RBAC; the admin token's
``system:masters`` group may do anything).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from k8sbridge.devkube import errors, sakeys, satokens

Obj = dict[str, Any]

ADMIN_USER = "devkube-admin"  # who devkube's own bearer token authenticates as
ADMIN_GROUPS = ("system:masters", "system:authenticated")
JWKS_PATH = "/openid/v1/jwks"
OPENID_PATH = "/.well-known/openid-configuration"
ADMIN = satokens.User(username=ADMIN_USER, groups=ADMIN_GROUPS)
# Every request of a server without authentication (kube-apiserver's old insecure port).
INSECURE = satokens.User(username="system:unsecured",
                         groups=("system:masters", "system:authenticated"))


class Authenticator:
    """The bearer tokens devkube accepts; ``token`` None means no authentication at all."""

    def __init__(self, *, token: str | None, key: sakeys.SigningKey,
                 lookup: satokens.Lookup, clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.key = key
        self.lookup = lookup
        self.clock = clock

    def _check(self, presented: str, audiences: list[str]) -> tuple[satokens.User, list[str]]:
        """(user, audiences) of ``presented``; ``satokens.AuthFailed`` with the reason."""
        if self.token is not None and hmac.compare_digest(presented.encode(),
                                                          self.token.encode()):
            return ADMIN, audiences
        try:
            return satokens.authenticate(key=self.key, lookup=self.lookup, token=presented,
                                         now=self.clock(), audiences=audiences)
        except sakeys.TokenError as e:
            raise satokens.AuthFailed(satokens.NOT_OURS) from e

    def request_user(self, authorization: str) -> satokens.User:
        """The user of a request's ``Authorization`` header; 401 if there is none."""
        if self.token is None:
            return INSECURE
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise errors.unauthorized()
        try:
            user, _ = self._check(presented.strip(), [])
        except satokens.AuthFailed as e:
            raise errors.unauthorized() from e
        return user

    def token_review(self, body: Any) -> Obj:
        """authentication.k8s.io/v1 TokenReview: whose token is ``spec.token``?"""
        if not isinstance(body, dict) or body.get("kind") not in (None, "TokenReview"):
            raise errors.bad_request("the body must be a TokenReview")
        spec = body.get("spec")
        token = spec.get("token") if isinstance(spec, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.ApiError(
                code=422, reason="Invalid",
                message='TokenReview.authentication.k8s.io "" is invalid: spec.token: '
                "Required value",
            )
        assert isinstance(spec, dict)
        audiences = spec.get("audiences")
        wanted = [str(a) for a in audiences] if isinstance(audiences, list) else []
        status: Obj
        try:
            user, good = self._check(token, wanted)
        except satokens.AuthFailed as e:
            status = {"user": {}, "error": str(e)}
        else:
            status = {"authenticated": True, "user": user.info()}
            if good:
                status["audiences"] = good
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        return {"kind": "TokenReview", "apiVersion": satokens.API_VERSION,
                "metadata": {k: v for k, v in (meta or {}).items() if k == "name"},
                "spec": spec, "status": status}

    def self_subject_review(self, user: satokens.User, body: Any) -> Obj:
        """authentication.k8s.io/v1 SelfSubjectReview: who am I?"""
        if not isinstance(body, dict) or body.get("kind") not in (None, "SelfSubjectReview"):
            raise errors.bad_request("the body must be a SelfSubjectReview")
        return {"kind": "SelfSubjectReview", "apiVersion": satokens.API_VERSION,
                "metadata": {"creationTimestamp": satokens.rfc3339(self.clock())},
                "status": {"userInfo": user.info()}}

    def openid_configuration(self, *, server_url: str) -> Obj:
        return satokens.openid_configuration(jwks_uri=server_url.rstrip("/") + JWKS_PATH,
                                             algorithm=self.key.algorithm)

    def jwks(self) -> Obj:
        return self.key.jwks()
