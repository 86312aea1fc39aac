"""The ``pod-template-hash``: a stable name for one version of a Deployment's pod template.

Like the deployment controller's ``ComputeHash``: FNV-32a over a canonical rendering of the
template (plus the collision count, if any), encoded in the alphabet that avoids vowels and
look-alike characters so it never spells words. Only stability matters: the same template
always yields the same hash, a different one (almost always) another.
"""

from __future__ import annotations

import functools
import json
from typing import Any

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
TEMPLATE_HASH_LABEL = "pod-template-hash"

_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes) -> int:
    h = _FNV32_OFFSET
    for b in data:
        h ^= b
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` without the ``pod-template-hash`` label (for comparisons)."""
    copy: dict[str, Any] = json.loads(json.dumps(template))
    labels = (copy.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH_LABEL, None)
    return copy


def pod_template_hash(template: dict[str, Any], *, collision_count: int | None = None) -> str:
    canonical = json.dumps(
        template_without_hash(template), sort_keys=True, separators=(",", ":"))
    if collision_count is not None:
        canonical += f"#{collision_count}"
    return _hash_of(canonical)


@functools.lru_cache(maxsize=1024)
def _hash_of(canonical: str) -> str:
    """The hash of one canonical rendering (pure Python FNV costs ~0.1 ms per template, and
    every Deployment sync asks again for the same few templates)."""
    return safe_encode(str(fnv32a(canonical.encode())))
