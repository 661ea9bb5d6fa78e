"""Versions: every instance behind the load balancer serves the release (blue-green switched, no old one answering)."""

import pytest

pytestmark = [pytest.mark.smoke, pytest.mark.nightly]


@pytest.mark.p0
def test_every_instance_serves_expected_version(http_target, version_split, expected, evidence):
    wanted = expected.http_version(http_target)
    if wanted is None:  # nothing to compare with: still, one release must answer, not two
        evidence.record("version_split", version_split)
        evidence.expect("versions_answering", len(version_split), "==", 1, note=f"split {version_split}")
    else:
        evidence.expect("version_split", version_split, "==", {wanted: http_target.version.samples})
