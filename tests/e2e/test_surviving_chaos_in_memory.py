"""A 1 MB object updated 100 times does not grow devkube by hundreds of megabytes.

Issue 11's probe saw devkube grow from 60 to 836 MB: its watch history was capped by count,
not bytes, and 100 updates of a 1 MB ConfigMap kept 155 MB. Here a devkube process of its own
takes those 100 updates (PUT, new content each time) and its resident memory is read from
/proc before and after; ``bench/chaos.py`` prints the same figure for docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.chaos_faults import configmap_updates

pytestmark = pytest.mark.e2e

GROWTH_BOUND = 150_000_000  # bytes of RSS that 100 updates of 1 MB may add at most


@pytest.mark.timeout(240)
def test_a_1_mb_configmap_updated_100_times(tmp_path: Path) -> None:
    growth = configmap_updates(tmp_path, updates=100, size=1_000_000)
    assert growth.after - growth.before < GROWTH_BOUND, growth.describe()
    assert growth.peak - growth.before < GROWTH_BOUND + 50_000_000, growth.describe()
