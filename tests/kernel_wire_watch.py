"""Every v1 JSON document an in-process kernel master prints in the suite is checked against
Mesos' protos, the way stout's jsonify prints protobuf.

Why suite-wide: the representative session in ``tests/kernel/master/test_printing_what_mesos_
prints.py`` covers what one scenario emits; the rest of the suite (the bridge's integration and
fault tests, the kernel's own tests) drives the master into states that scenario never reaches.
The master has two places that write v1 JSON: ``streams.frame`` (scheduler and operator
events) and ``http._v1`` (operator responses). While the suite runs they are wrapped to keep a
sample of each kind of document (the first few per type, so large runs stay cheap); at the end
of the session every sample is checked and a difference fails the run. Masters in other
processes (``k8sbridge run``, the CLI tests) are not seen here.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from k8sbridge.kernel.master import http, streams
from tests.kernel.wire import jsonify

PER_TYPE = 5  # documents kept per (kind, type)

Sample = dict[tuple[str, str], list[dict[str, Any]]]


def _keep(sample: Sample, kind: str, doc: Any) -> None:
    if isinstance(doc, dict):
        bucket = sample[(kind, str(doc.get("type")))]
        if len(bucket) < PER_TYPE:
            bucket.append(streams.compact(_copy(doc)))  # as both writers print it


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def problems(sample: Sample) -> list[str]:
    """What differs from jsonify's output; an event may be a scheduler or an operator one."""
    found: set[str] = set()
    for (kind, ctype), docs in sorted(sample.items()):
        for doc in docs:
            if kind == "response":
                wrong = jsonify.problems(doc, "mesos.v1.master.Response", f"resp:{ctype}")
            else:
                wrong = jsonify.problems(doc, "mesos.v1.scheduler.Event", f"event:{ctype}")
                if wrong and not jsonify.problems(doc, "mesos.v1.master.Event"):
                    wrong = []
            found.update(re.sub(r"\[\d+\]", "[]", p) for p in wrong)
    return sorted(found)


@pytest.fixture(scope="session", autouse=True)
def _kernel_prints_what_mesos_prints() -> Iterator[Sample]:
    sample: Sample = collections.defaultdict(list)
    frame, v1 = streams.frame, http._v1

    def wrap(kind: str, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def watched(doc: Any) -> Any:
            _keep(sample, kind, doc)
            return inner(doc)
        return watched

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streams, "frame", wrap("event", frame))
        patch.setattr(http, "_v1", wrap("response", v1))
        yield sample
    wrong = problems(sample)
    assert not wrong, "the kernel printed JSON Mesos would not:\n" + "\n".join(wrong)
