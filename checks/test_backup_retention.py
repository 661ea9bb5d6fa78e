"""Retention, nightly: the policy actually holds, as many backups kept as it says and the oldest as old."""

import math

import pytest

from opsproof.environment.backups import FORMATS, REPOSITORY_FORMATS

pytestmark = [pytest.mark.nightly, pytest.mark.backup]

LISTED_FORMATS = tuple(f for f in FORMATS if f not in REPOSITORY_FORMATS)  # backups listed at a location
AGE_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def retention(backups_target, key: str):
    """The set's ``retention.<key>``, or a skip saying it sets none."""
    value = getattr(backups_target.retention, key, None)
    if value is None:
        pytest.skip(f"{backups_target.where} sets no retention.{key}")
    return value


@pytest.mark.p1
@pytest.mark.formats(*LISTED_FORMATS)
def test_backups_kept_meet_retention(backups_target, backups, evidence):
    min_count = retention(backups_target, "min_count")
    evidence.expect("backups_kept", len(backups.files()), ">=", min_count)


@pytest.mark.p1
@pytest.mark.formats(*LISTED_FORMATS)
def test_oldest_backup_meets_retention(backups_target, backups, evidence):
    """The age is rounded down to the tenth the evidence shows, so a backup too young never reads as old enough;
    its unit follows the limit (days from 2 days), so both numbers read alike."""
    limit_s = retention(backups_target, "oldest_min_age")
    files = backups.files()
    evidence.require("oldest_backup", files[0].name if files else "none", "!=", "none")
    unit, unit_s = next(((u, s) for u, s in AGE_UNITS if limit_s >= 2 * s), ("s", 1))
    age = math.floor(backups.age_s(files[0]) / unit_s * 10) / 10
    evidence.expect(f"oldest_age_{unit}", age, ">=", round(limit_s / unit_s, 2))
