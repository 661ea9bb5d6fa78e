"""Verify a history: the chain, each record's shape and signature, the artifacts it cites, the folders beside it.

Each problem names its line and the kind of tampering it looks like; ``notes`` say what holds but a
reader should know (a torn line set aside, records from before signing began, no key at all).
``untrusted`` holds the lines whose content cannot be taken as written: readiness leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from opsproof.history import schema
from opsproof.history.chain import GENESIS, TORN, lines, loads, parse, read, record_hash
from opsproof.history.folders import unrecorded_folders
from opsproof.history.record import sha256_file


@dataclass(frozen=True)
class Trust:
    """The keys a verifier trusts, and where it got them (``history_public_key``, ``--public-key``)."""

    fingerprints: tuple[str, ...] = ()
    source: str = ""


@dataclass
class Verification:
    path: Path
    records: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    untrusted: set[int] = field(default_factory=set)
    signed: int = 0
    keys: list[str] = field(default_factory=list)  # fingerprints that signed, in order of first use
    trust: Trust = field(default_factory=Trust)

    @property
    def ok(self) -> bool:
        return not self.problems

    def signing_line(self) -> str:
        """One line on signatures, for ``history verify`` and readiness."""
        if not self.signed:
            return "not signed (set history_signing_key; without it anyone who can write the file can rewrite it)"
        against = (f"the pinned key {', '.join(self.trust.fingerprints)} ({self.trust.source})" if self.trust.fingerprints
                   else f"{self.keys[0]}, the key of the first signed record (not pinned: set history_public_key)")
        return f"{self.signed} of {self.records} records signed; signatures verified against {against}"


def verify(path: Path, check_artifacts: bool = True, runs_dir: Path | None = None, trust: Trust = Trust()) -> Verification:
    """Walk the chain; each problem names its line and says what kind of tampering it looks like.

    ``runs_dir`` (the environment's reports folder) is searched for run folders no record cites, so an
    emptied or deleted history next to its runs is named too.
    """
    result = Verification(path, trust=trust)
    found = lines(path)
    parsed = [(number, loads(line)) for number, line in found]
    pruned = pruned_artifacts([r for _, r in parsed if isinstance(r, dict)])
    forgiven: dict[str, int] = {}  # run folders whose record a torn line took -> the torn record's line
    walk = _Walk(result)
    for number, record in parsed:
        result.records += 1
        if record is TORN:
            result.problems.append(
                f"line {number}: torn last line ({len(found[-1][1])} bytes, an interrupted write; the next run sets "
                f"it aside)" if number == len(parsed) else f"line {number}: not a history record (edited or truncated)")
            result.untrusted.add(number)
            walk.lost()
        elif walk.step(number, record):
            if record.get("type") == "torn":
                forgiven.update({name: number for name in record["unrecorded"]})
                result.notes.append(_torn_note(number, record))
            if check_artifacts and record.get("type", "run") == "run":
                result.problems.extend(f"line {number}: {p}" for p in artifact_problems(path.parent, record, pruned))
    walk.finish()
    if not check_artifacts:
        return result
    folders = unrecorded_folders(path, read(path), runs_dir)
    for name, _ in folders:
        if name in forgiven:
            result.notes.append(f"run folder {name} has no history record: its record was lost in the torn line set "
                                f"aside at line {forgiven[name]}")
        else:
            result.problems.append(f"run folder {name} has no history record (a record removed from the end, or a "
                                   f"run that was not recorded)")
    if not path.exists():
        beside = f", but {len(folders)} run folder(s) beside it have results (deleted?)" if folders else \
            " (no run recorded yet)"
        result.problems.insert(0, f"{path}: no history{beside}")
    elif folders and not any(isinstance(r, dict) for _, r in parsed):
        result.problems.insert(0, f"{path}: the history is empty, but {len(folders)} run folder(s) beside it have "
                                  f"results (emptied or replaced?)")
    return result


class _Walk:
    """The chain walk over records in file order: links, hashes, shapes and signatures."""

    def __init__(self, result: Verification):
        self.result = result
        self.previous_hash: str | None = GENESIS
        self.expected_seq = 1
        self.first_signed: int | None = None
        self.unsigned_before = 0

    def lost(self) -> None:
        self.previous_hash = None  # the next link cannot be judged against a line that is not a record

    def step(self, number: int, record) -> bool:
        """Judge one record; True when its shape is right (so its artifacts and notes can be read)."""
        problems, untrusted = self.result.problems, self.result.untrusted
        shape = schema.problem(record)
        if shape:
            problems.append(f"line {number}: {shape}")
            untrusted.add(number)
        if not isinstance(record, dict) or type(record.get("seq")) is not int or not isinstance(record.get("hash"), str):
            self.lost()
            return False
        seq, stored, prev = record["seq"], record["hash"], record.get("prev_hash")
        if record_hash(record) != stored:
            problems.append(f"line {number}: record edited (its content does not match its hash)")
            untrusted.add(number)
        elif self.previous_hash is not None and prev != self.previous_hash:
            if seq > self.expected_seq:
                problems.append(f"line {number}: record(s) removed before it (seq {seq}, expected {self.expected_seq})")
            elif seq < self.expected_seq:
                problems.append(f"line {number}: records reordered (seq {seq} after seq {self.expected_seq - 1})")
            else:
                problems.append(f"line {number}: record inserted or replaced (prev_hash does not match line "
                                f"{number - 1})")
        if number not in untrusted:
            self._signature(number, record)
        self.previous_hash, self.expected_seq = stored, seq + 1
        return not shape

    def _signature(self, number: int, record: dict) -> None:
        result = self.result
        pinned = result.trust.fingerprints
        if "signature" not in record and "public_key" not in record:
            if self.first_signed is not None:
                result.problems.append(f"line {number}: not signed, after signed records (forged, or written "
                                       f"without the key)")
                result.untrusted.add(number)
            else:
                self.unsigned_before += 1
            return
        from opsproof.history import signing  # cryptography, only for a signed history

        key = signing.record_key(record)
        if key is None or not signing.signature_holds(record):
            problem = "signature does not verify (changed after it was signed, or not signed by its key)"
        elif record.get("signed_by") != key:
            problem = f"signed_by {record.get('signed_by')} is not its public key's fingerprint {key}"
        elif pinned and key not in pinned:
            problem = f"signed by {key}, not by the pinned key {', '.join(pinned)}"
        elif not pinned and result.keys and key != result.keys[0]:
            problem = (f"signed by {key}, another key than line {self.first_signed} ({result.keys[0]}); pin the keys "
                       f"you trust in history_public_key")
        else:
            problem = None
        if problem:
            result.problems.append(f"line {number}: {problem}")
            result.untrusted.add(number)
            return
        if self.first_signed is None:
            self.first_signed = number
        if key not in result.keys:
            result.keys.append(key)
        result.signed += 1

    def finish(self) -> None:
        result = self.result
        if result.trust.fingerprints and result.records and not result.signed:
            result.problems.append(f"no record is signed, but {result.trust.source} pins "
                                   f"{', '.join(result.trust.fingerprints)}")
        if self.first_signed is not None and self.unsigned_before:
            result.notes.append(f"the {self.unsigned_before} record(s) before line {self.first_signed} are not signed "
                                f"(written before history_signing_key was set)")


def _torn_note(number: int, record: dict) -> str:
    lost = f"; run folder(s) without a record then: {', '.join(record['unrecorded'])}" if record["unrecorded"] else ""
    return (f"line {number}: a torn last line ({record['bytes']} bytes, sha256 {record['sha256'][:16]}...) was set "
            f"aside to {record['set_aside']} at {record.get('recorded_at')} by {record.get('host')}{lost}")


def artifact_problems(base: Path, record: dict, pruned: set[str] = frozenset()) -> list[str]:
    problems = []
    for artifact in record.get("artifacts", []):
        file = base / artifact["path"]
        if not file.is_file():
            if artifact["path"] not in pruned:
                problems.append(f"artifact {artifact['path']} is missing")
        elif sha256_file(file) != artifact["sha256"]:
            problems.append(f"artifact {artifact['path']} changed after the run (sha256 mismatch)")
    return problems


def pruned_artifacts(records: list[dict]) -> set[str]:
    """Paths of the artifacts that prune records say were removed under retention."""
    return {a["path"] for r in records if r.get("type") == "prune" and schema.problem(r) is None
            for run in r["pruned"] for a in run["artifacts"]}


def trusted_runs(path: Path, result: Verification) -> list[dict]:
    """The run records of ``path`` that ``result`` found well-shaped and not tampered with, in chain order."""
    return [record for number, line in lines(path)
            if number not in result.untrusted and (record := parse(line)) is not None and schema.is_run(record)]
