"""Who may read the recorder's segments: a ServiceAccount token the API server vouches for.

The recorder runs in the node's network namespace, where NetworkPolicy does not apply,
so its port is open to whatever reaches a node address. ``GET /segments`` and
``GET /segments/<name>`` are therefore answered only when the request carries, in the
``X-Flowpol-Token`` header, a token that

1. the Kubernetes API server authenticates (a TokenReview) for the audience
   ``flowpol-recorder`` — checked in ``status.audiences``, as the TokenReview API asks
   of a client that sets ``spec.audiences`` (k8s.io/api/authentication/v1,
   TokenReviewStatus.audiences: "should validate that a compatible audience identifier
   is returned in the status.audiences field to ensure that the TokenReview server is
   audience aware"), and
2. belongs to one of the configured readers: ServiceAccounts, by default
   ``flowpol-system/flowpol-collector`` (``--segment-readers``).

A header of flowpol's own, not ``Authorization``: the API server's pod proxy deletes
``Authorization`` once it has authenticated the caller
(k8s.io/apiserver/pkg/endpoints/filters/authentication.go, WithAuthentication:
``req.Header.Del("Authorization")``) and passes the other request headers on
(k8s.io/apimachinery/pkg/util/proxy/upgradeaware.go, UpgradeAwareHandler.ServeHTTP
copies them with ``utilnet.CloneHeader``; Go's ``httputil.ReverseProxy`` then drops
only the hop-by-hop ones). So one header works directly and through the proxy.

Why a list of identities and not a SubjectAccessReview (``get pods/proxy`` on the
recorder pod): any workload can have a token with any audience for its own
ServiceAccount (a projected volume), so the audience says where a token may be used,
not who holds it; and ``pods/proxy`` is often granted broadly, which would open direct
reads to all of those holders. With the list, who may read is who may obtain a token of
a reader: ``create`` on ``serviceaccounts/token`` for it, or running a pod as it in the
recorder's namespace — both decided by the API server's RBAC. The recorder needs only
``create`` on ``tokenreviews`` for it.

Answers: 401 without a token or with one the API server does not accept (expired,
another audience, a deleted ServiceAccount), 403 for an authenticated identity that is
not a reader, 503 when no review could be made (the API server unreachable, the
recorder not allowed to review): fail closed. Decisions are cached by the token's
SHA-256 for ``cache_s`` (never past the token's own ``exp``); a review that could not be
made is never cached. At most ``max_reviews`` reviews run at once, so that a flood of
made-up tokens cannot turn into a flood of API requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from recorder.errors import ClusterError, UsageError

AUDIENCE = "flowpol-recorder"
TOKEN_HEADER = "X-Flowpol-Token"
# Set on every refusal, so that a client behind the pod proxy can tell the recorder's
# answer from the API server's own 401/403.
REFUSED_HEADER = "X-Flowpol-Refused"
DEFAULT_READERS = "flowpol-system/flowpol-collector"
REFUSAL_REASONS = ("no_token", "unauthenticated", "not_a_reader", "review_unavailable")

MAX_TOKEN_BYTES = 16384
# RFC 6750 b64token: what a bearer token may consist of (JWTs are a subset).
_B64TOKEN = re.compile(r"^[A-Za-z0-9._~+/-]+=*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class ReviewUnavailable(Exception):
    """No review could be made; the message says why (for the 503)."""


@dataclass(frozen=True, slots=True)
class Decision:
    status: int  # 200, 401, 403 or 503
    reason: str  # "ok" or one of REFUSAL_REASONS
    message: str
    user: str | None = None


def parse_readers(text: str, option: str = "--segment-readers") -> tuple[str, ...]:
    """``NS/NAME[,NS/NAME...]`` -> the usernames the API server gives those
    ServiceAccounts (``system:serviceaccount:NS:NAME``)."""
    users = []
    for item in (p.strip() for p in text.split(",")):
        ns, sep, name = item.partition("/")
        if not (sep and _DNS1123_LABEL.match(ns) and _DNS1123_SUBDOMAIN.match(name)):
            raise UsageError(f"{option} {text!r}: give ServiceAccounts as NAMESPACE/NAME, "
                             f"comma-separated (e.g. {DEFAULT_READERS}); {item!r} is not one")
        users.append(f"system:serviceaccount:{ns}:{name}")
    return tuple(dict.fromkeys(users))


def _shown(users: tuple[str, ...]) -> str:
    return ", ".join(u.removeprefix("system:serviceaccount:").replace(":", "/", 1)
                     for u in users)


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim (Unix time) of a JWT, unverified; None when it has none. Used
    only to cut short the cache of a token the API server has just accepted."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


class ApiTokenReview:
    """``review(token)``: a TokenReview through the API server the recorder already uses
    (its kubeconfig, else in-cluster); the review's ``status``."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None,
                 timeout_s: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout_s = timeout_s
        self._api: Any = None
        self._server = ""
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._api is None:
                from kubernetes import client

                from recorder.kube import api_client

                try:
                    api, _ = api_client(self.kubeconfig, self.context)
                except ClusterError as e:
                    raise ReviewUnavailable(f"no Kubernetes API to review tokens with ({e})"
                                            ) from None
                self._api = client.AuthenticationV1Api(api)
                self._server = api.configuration.host
            return self._api

    def __call__(self, token: str) -> dict:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        from recorder.kube import root_cause

        api = self._client()
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": [AUDIENCE]}}
        try:
            resp = api.create_token_review(body, _preload_content=False,
                                           _request_timeout=(self.timeout_s, self.timeout_s))
            status = json.loads(resp.data).get("status")
        except ApiException as e:
            if e.status in (401, 403):
                raise ReviewUnavailable(
                    f"the API server {self._server} refused the recorder's token review "
                    f"({e.status} {e.reason}); the recorder's ClusterRole needs create on "
                    "tokenreviews (authentication.k8s.io)") from None
            raise ReviewUnavailable(f"the token review failed on {self._server}: {e.status} "
                                    f"{e.reason}") from None
        except (Urllib3Error, OSError) as e:
            raise ReviewUnavailable(f"cannot reach the API server {self._server} to review "
                                    f"the token ({root_cause(e)})") from None
        except (ValueError, AttributeError):
            raise ReviewUnavailable(f"the API server {self._server} answered the token "
                                    "review with something that is not a TokenReview") from None
        if not isinstance(status, dict):
            raise ReviewUnavailable(f"the API server {self._server} answered the token review "
                                    "without a status")
        return status


class SegmentReaders:
    """``decide(token)``: may the bearer of this token read segments? See the module doc."""

    def __init__(self, readers: tuple[str, ...], review: Callable[[str], dict],
                 cache_s: float = 10.0, max_entries: int = 1024, max_reviews: int = 4,
                 clock: Callable[[], float] = time.time) -> None:
        self.readers = readers
        self.review = review
        self.cache_s = cache_s
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Decision]] = OrderedDict()
        self._lock = threading.Lock()
        self._reviews = threading.BoundedSemaphore(max_reviews)
        self.refused = dict.fromkeys(REFUSAL_REASONS, 0)  # reason -> count (metrics)

    @property
    def shown(self) -> str:
        return _shown(self.readers)

    def decide_header(self, values: list[str]) -> Decision:
        """The decision for the ``X-Flowpol-Token`` header values of one request."""
        if len(values) > 1:
            decision = Decision(401, "unauthenticated", f"more than one {TOKEN_HEADER} header")
            with self._lock:
                self.refused[decision.reason] += 1
            return decision
        return self.decide(values[0].strip() if values else None)

    def decide(self, token: str | None) -> Decision:
        decision = self._decide(token)
        if decision.status != 200:
            with self._lock:
                self.refused[decision.reason] += 1
        return decision

    def _decide(self, token: str | None) -> Decision:
        readers = self.shown
        if not token:
            return Decision(401, "no_token", f"no token: send a token of a segment reader "
                                             f"({readers}) for audience {AUDIENCE} in the "
                                             f"{TOKEN_HEADER} header")
        if len(token) > MAX_TOKEN_BYTES or not _B64TOKEN.match(token):
            return Decision(401, "unauthenticated", f"the {TOKEN_HEADER} header does not "
                                                    "hold a bearer token")
        key = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        if not self._reviews.acquire(timeout=10):
            return Decision(503, "review_unavailable", "too many token reviews at once; "
                                                       "try again")
        try:
            status = self.review(token)
        except ReviewUnavailable as e:
            return Decision(503, "review_unavailable", f"cannot verify the token: {e}; "
                                                       "segments are served only to a "
                                                       "verified token")
        finally:
            self._reviews.release()
        decision = self._judge(status, readers)
        until = now + self.cache_s
        if decision.status == 200:
            exp = jwt_expiry(token)
            if exp is not None:
                until = min(until, exp)
        with self._lock:
            self._cache[key] = (until, decision)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return decision

    def _judge(self, status: dict, readers: str) -> Decision:
        if status.get("authenticated") is not True:
            why = str(status.get("error") or "not authenticated")[:300]
            return Decision(401, "unauthenticated", f"the API server did not accept the token "
                                                    f"({why})")
        audiences = status.get("audiences")
        if not isinstance(audiences, list) or AUDIENCE not in audiences:
            return Decision(401, "unauthenticated", f"the token is not for audience {AUDIENCE}")
        user = (status.get("user") or {}).get("username")
        if not isinstance(user, str) or user not in self.readers:
            return Decision(403, "not_a_reader", f"{str(user)[:200]} may not read segments; "
                                                 f"the readers are {readers}", None)
        return Decision(200, "ok", "", user)
