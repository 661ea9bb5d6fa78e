"""File-storage and secrets backups (format files) and retention, here and on a host over a real sshd.

Archives are real tar.gz and zip files written with the standard library; faults are a cut tar.gz, a zip
member whose bytes changed, a latest archive with a quarter of the files, a manifest that disagrees, too
few backups kept and an oldest one younger than the policy.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import sandbox_environment
from opsproof.backups.archives import scan, scan_path
from ssh_server import sshd  # noqa: F401 - the module-scoped sshd fixture

HOUR_S, DAY_S = 3600, 86400
FILES = 20


def aged(path: Path, age_s: float) -> Path:
    moment = time.time() - age_s
    os.utime(path, (moment, moment))
    return path


def tar_gz(path: Path, files: int = FILES, age_s: float = HOUR_S) -> Path:
    """``files`` members of 1000 bytes each under uploads/, gzip-compressed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        folder = tarfile.TarInfo("uploads")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for index in range(files):
            data = f"receipt {index:04d} ".encode() * 76 + b"x" * 12  # 1000 bytes
            member = tarfile.TarInfo(f"uploads/receipt-{index:04d}.pdf")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return aged(path, age_s)


def zip_file(path: Path, age_s: float = HOUR_S, damaged: bool = False) -> Path:
    """Stored (uncompressed) members, so a changed byte is found by its CRC-32, exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(FILES):
            archive.writestr(f"secrets/key-{index:02d}.pem", f"key material {index:02d}\n" * 40)
    if damaged:
        data = bytearray(path.read_bytes())
        at = data.index(b"key material 03")
        data[at:at + 3] = b"KEY"
        path.write_bytes(bytes(data))
    return aged(path, age_s)


def manifest(directory: Path, wrong: str | None = None) -> None:
    lines = [f"{wrong or hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
             for p in sorted(directory.iterdir()) if p.name != "SHA256SUMS"]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def history(directory: Path, suffix: str = "tar.gz") -> None:
    """Three earlier archives of the same shape, a day apart."""
    for day in (3, 2, 1):
        if suffix == "zip":
            zip_file(directory / f"secrets-{day}.zip", age_s=day * DAY_S + HOUR_S)
        else:
            tar_gz(directory / f"uploads-{day}.tar.gz", age_s=day * DAY_S + HOUR_S)


def files_set(directory: Path, pattern: str, **extra) -> dict:
    return {"format": "files", "location": str(directory / pattern), "rpo": "24h", "rto": "1h",
            "manifest": "SHA256SUMS", **extra}


@pytest.fixture
def archive_sets(tmp_path) -> dict:
    """One set per case; the good one names its host (``of: host.db1``), the others have no source."""
    sets = {}
    good = tmp_path / "good"
    history(good)
    tar_gz(good / "uploads-0.tar.gz")
    manifest(good)
    sets["good"] = files_set(good, "uploads-*.tar.gz", of="host.db1",
                             retention={"min_count": 4, "oldest_min_age": "2d"})
    cut = tmp_path / "cut"
    history(cut)
    whole = tar_gz(cut / "uploads-0.tar.gz").read_bytes()
    aged(cut / "uploads-0.tar.gz", 0).write_bytes(whole[: len(whole) // 2])
    sets["cut"] = files_set(cut, "uploads-*.tar.gz", manifest=None)
    damaged = tmp_path / "damaged"
    history(damaged, "zip")
    zip_file(damaged / "secrets-0.zip", damaged=True)
    sets["damaged"] = files_set(damaged, "secrets-*.zip", manifest=None)
    dropped = tmp_path / "dropped"
    history(dropped)
    tar_gz(dropped / "uploads-0.tar.gz", files=FILES // 4)
    sets["dropped"] = files_set(dropped, "uploads-*.tar.gz", manifest=None)
    mismatch = tmp_path / "mismatch"
    tar_gz(mismatch / "uploads-0.tar.gz")
    manifest(mismatch, wrong="0" * 64)
    sets["mismatch"] = files_set(mismatch, "uploads-*.tar.gz")
    few = tmp_path / "few"
    for day in (1, 0):
        tar_gz(few / f"uploads-{day}.tar.gz", age_s=day * DAY_S + HOUR_S)
    sets["few"] = files_set(few, "uploads-*.tar.gz", manifest=None, retention={"min_count": 7})
    young = tmp_path / "young"
    for day in (2, 1, 0):
        tar_gz(young / f"uploads-{day}.tar.gz", age_s=day * DAY_S + HOUR_S)
    sets["young"] = files_set(young, "uploads-*.tar.gz", manifest=None, retention={"oldest_min_age": "7d"})
    return sets


def outcome(run, name: str, check: str) -> dict:
    return run.record(check, name)


def run_sets(sandbox, sshd, write_env, run_checks, sets: dict):  # noqa: F811 - sshd is the fixture's value
    environment = sandbox_environment(sandbox, backups=sets, host={"db1": {**sshd, "timeout_s": 5}})
    return run_checks(write_env(environment), "-m", "nightly", "-k", "backup")


def test_archives_and_retention_judged_with_evidence(sandbox, sshd, write_env, run_checks, archive_sets):  # noqa: F811
    run = run_sets(sandbox, sshd, write_env, run_checks, archive_sets)
    assert run.ret == 1

    good = {r["check"]: r["outcome"] for r in run.results["checks"] if r["where"] == "backups.good"}
    assert good == {check: "passed" for check in (
        "test_latest_archive_reads_to_its_end", "test_latest_archive_members_within_history",
        "test_backups_kept_meet_retention", "test_oldest_backup_meets_retention", "test_latest_backup_exists",
        "test_latest_backup_within_rpo", "test_latest_backup_size_within_history",
        "test_latest_backup_matches_manifest_checksum")}, good
    members = outcome(run, "good", "test_latest_archive_members_within_history")["measurements"]
    assert members[:2] == [{"measure": "previous_member_counts", "value": [FILES] * 3},
                           {"measure": "member_count", "value": FILES, "op": ">=", "limit": FILES // 2,
                            "verdict": "ok"}]
    assert outcome(run, "good", "test_oldest_backup_meets_retention")["measurements"][-1] == {
        "measure": "oldest_age_d", "value": 3.0, "op": ">=", "limit": 2.0, "verdict": "ok"}

    def failed(name: str, check: str) -> str:
        record = outcome(run, name, check)
        assert record["outcome"] == "failed", (name, check, record)
        return record["message"]

    assert failed("cut", "test_latest_archive_reads_to_its_end") == (
        "archive_read ('truncated (Compressed file ended before the end-of-stream marker was reached)') == "
        "'complete' on backups.cut")
    assert outcome(run, "cut", "test_latest_archive_members_within_history")["outcome"] == "skipped"
    assert failed("damaged", "test_latest_archive_reads_to_its_end") == (
        "archive_read (\"corrupt (Bad CRC-32 for file 'secrets/key-03.pem')\") == 'complete' on backups.damaged")
    assert outcome(run, "damaged", "test_latest_archive_reads_to_its_end")["measurements"][1] == {
        "measure": "archive_kind", "value": "zip"}
    assert failed("dropped", "test_latest_archive_members_within_history") == (
        f"member_count ({FILES // 4}) >= {FILES // 2} on backups.dropped; "
        f"member_bytes ({FILES // 4 * 1000}) >= {FILES * 1000 // 2} on backups.dropped")
    assert outcome(run, "dropped", "test_latest_archive_reads_to_its_end")["outcome"] == "passed"
    actual = hashlib.sha256((Path(archive_sets["mismatch"]["location"]).parent / "uploads-0.tar.gz")
                            .read_bytes()).hexdigest()
    assert failed("mismatch", "test_latest_backup_matches_manifest_checksum") == (
        f"sha256 ('{actual}') == '{'0' * 64}' on backups.mismatch")
    assert failed("few", "test_backups_kept_meet_retention") == "backups_kept (2) >= 7 on backups.few"
    assert outcome(run, "few", "test_oldest_backup_meets_retention")["outcome"] == "skipped"
    assert failed("young", "test_oldest_backup_meets_retention") == "oldest_age_d (2.0) >= 7 on backups.young"


def test_archives_on_a_host_stream_over_ssh_and_a_zip_is_fetched(sandbox, sshd, write_env, run_checks,  # noqa: F811
                                                                  archive_sets):
    """Each remote path once: a tar.gz and its history streamed, a cut one, a zip (its directory is at its end)."""
    sets = {name: {**archive_sets[name], "on": "host.db1"} for name in ("good", "cut", "damaged")}
    run = run_sets(sandbox, sshd, write_env, run_checks, sets)
    assert run.ret == 1
    good = {r["check"]: r["outcome"] for r in run.results["checks"] if r["where"] == "backups.good"}
    assert set(good.values()) == {"passed"} and len(good) == 8, good
    members = run.record("test_latest_archive_members_within_history", "good")["measurements"]
    assert members[0] == {"measure": "previous_member_counts", "value": [FILES] * 3}
    assert run.record("test_latest_archive_reads_to_its_end", "cut")["message"] == (
        "archive_read ('truncated (Compressed file ended before the end-of-stream marker was reached)') == "
        "'complete' on backups.cut")
    assert run.record("test_latest_archive_reads_to_its_end", "damaged")["message"] == (
        "archive_read (\"corrupt (Bad CRC-32 for file 'secrets/key-03.pem')\") == 'complete' on backups.damaged")


def test_a_tar_cut_at_a_member_boundary_is_truncated_and_trailing_garbage_corrupt(tmp_path):
    """tarfile ends quietly where a header is missing or unreadable; the end-of-archive block is checked."""
    whole = tar_gz(tmp_path / "a.tar.gz")
    with tarfile.open(whole) as archive:
        third = archive.getmembers()[4].offset  # where the fourth file's header starts
    plain = gzip.decompress(whole.read_bytes())
    (tmp_path / "cut.tar").write_bytes(plain[:third])
    (tmp_path / "garbage.tar").write_bytes(plain[:third] + b"not a tar header" * 64)
    assert scan_path(whole).verdict == "complete"
    assert scan_path(tmp_path / "cut.tar").verdict == "truncated (no end-of-archive block after 3 files)"
    assert scan_path(tmp_path / "garbage.tar").verdict == f"corrupt (invalid tar header at byte {third})"
    assert scan(io.BytesIO(b"")).verdict == "truncated (empty file)"


def test_a_tar_gz_whose_gzip_checksum_disagrees_is_corrupt_though_tarfile_streams_it(tmp_path):
    """tarfile's own stream mode (``r|gz``) never checks the gzip trailer; the archive check reads it."""
    data = bytearray(tar_gz(tmp_path / "a.tar.gz").read_bytes())
    data[-8:-4] = bytes(b ^ 0xFF for b in data[-8:-4])  # the trailer's CRC-32; every member still decodes
    (tmp_path / "a.tar.gz").write_bytes(bytes(data))
    with tarfile.open(tmp_path / "a.tar.gz", mode="r|gz") as archive:
        assert sum(1 for member in archive if member.isfile()) == FILES
    assert scan_path(tmp_path / "a.tar.gz").verdict.startswith("corrupt (CRC check failed ")
