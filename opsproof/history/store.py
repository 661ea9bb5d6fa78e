"""Evidence off the runner: each run's artifacts and one shared, chained history in S3-compatible storage.

Under ``s3://bucket/prefix/<environment>/``::

    runs/<run id>/report.html, junit.xml, results.json    each with Object Lock retention when configured
    history/0000000042.json                               one chained (signed) record per object

A record is appended with a conditional write of the next sequence number (``If-None-Match: *``): of
two runners appending at once, one writes seq 42 and the other gets 412, reads the new head and writes
seq 43, so the chain never forks and nothing is lost. The runner's local history stays as it is; what it
has uploaded is remembered in ``history.store.json`` beside it, and a run uploads whatever an earlier
run could not (``catch_up``). Reading (``mirror``) copies the store into a local folder laid out like
a reports folder, so ``verify`` and the readiness report read it as they read local runs; every version
of every object is listed, the first one is used, and a later one is reported as an overwrite.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from opsproof.errors import first_line
from opsproof.history import chain, schema
from opsproof.history.record import now_utc, sha256_file

STATE_FILE = "history.store.json"
CHAIN_FIELDS = ("seq", "prev_hash", "hash", "signature", "signed_by", "public_key")
APPEND_ATTEMPTS = 50


class StoreError(Exception):
    """The store could not be reached or refused a request; the message names the request."""


class Taken(Exception):
    """A conditional write found the key already there."""


class EvidenceStore:
    def __init__(self, settings, environment: str):
        self.settings = settings
        self.bucket = settings.bucket
        self.root = f"{settings.prefix}/{environment}/" if settings.prefix else f"{environment}/"
        self.url = f"s3://{self.bucket}/{self.root}"
        self._client = None

    def _s3(self):
        if self._client is None:
            import boto3  # only environments with a store need it
            from botocore.config import Config

            s3 = self.settings.s3
            secret = lambda v: v.get_secret_value() if v is not None else None  # noqa: E731
            config = Config(connect_timeout=s3.timeout_s, read_timeout=s3.timeout_s,
                            retries={"mode": "standard", "total_max_attempts": 2})
            self._client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region, config=config,
                                        aws_access_key_id=secret(s3.access_key_id),
                                        aws_secret_access_key=secret(s3.secret_access_key))
        return self._client

    def _call(self, what: str, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._s3(), method)(Bucket=self.bucket, **kwargs)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise Taken() from None
            raise StoreError(f"{what} {self.url}: {first_line(error)}") from None
        except BotoCoreError as error:
            raise StoreError(f"{what} {self.url}: {first_line(error)}") from None

    def _put_new(self, key: str, body: bytes, sha256: str) -> None:
        """Create ``key`` unless it exists (``Taken``), with the retention the environment asks for."""
        lock = self.settings.object_lock
        extra = {} if lock is None else {
            "ObjectLockMode": lock.mode,
            "ObjectLockRetainUntilDate": datetime.now(timezone.utc) + timedelta(days=lock.days)}
        self._call(f"upload {key} to", "put_object", Key=self.root + key, Body=body, IfNoneMatch="*",
                   ChecksumAlgorithm="SHA256", Metadata={"sha256": sha256}, **extra)

    def upload_run(self, record: dict, base: Path) -> str:
        """Upload a run's artifacts under ``runs/<run id>/`` (``<run id>-2`` when another runner's run took
        that name); an artifact uploaded by an earlier, interrupted attempt is not uploaded again."""
        attempt, folder = 1, record["run_id"]
        while True:
            try:
                for artifact in record["artifacts"]:
                    self._upload_once(f"runs/{folder}/{artifact['name']}", base / artifact["path"], artifact["sha256"])
                return folder
            except Taken:
                attempt += 1
                folder = f"{record['run_id']}-{attempt}"

    def _upload_once(self, key: str, file: Path, sha256: str) -> None:
        try:
            self._put_new(key, file.read_bytes(), sha256)
        except Taken:
            there = self._call(f"read {key} from", "head_object", Key=self.root + key)
            if there.get("Metadata", {}).get("sha256") != sha256:
                raise

    def head(self, after: int = 0) -> dict | None:
        """The last history record, listing only keys after seq ``after`` (all of them when none is), or None."""
        keys, token = [], None
        while True:
            page = self._call("list the history of", "list_objects_v2", Prefix=self.root + "history/",
                              StartAfter=self.root + f"history/{after:010d}.json",
                              **({"ContinuationToken": token} if token else {}))
            keys += [item["Key"] for item in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                break
        if not keys:
            return self.head() if after else None
        key = max(keys)
        body = self._call(f"read {key.removeprefix(self.root)} from", "get_object", Key=key)["Body"].read()
        record = chain.parse(body)
        if record is None:
            raise StoreError(f"{self.url}{key.removeprefix(self.root)} is not a history record: the chain cannot be "
                             f"continued (see opsproof history verify --from-store)")
        return record

    def append(self, body: dict, signer=None, known_seq: int = 0) -> dict:
        """Chain ``body`` after the store's last record with a conditional write; a runner that loses the race
        for a sequence number chains after the winner. A body already at the head is not appended twice.
        ``known_seq``, a sequence number seen before, spares listing the keys before it."""
        last = self.head(max(known_seq - 1, 0))
        for _ in range(APPEND_ATTEMPTS):
            if last is not None and last.get("source") == body["source"]:
                return last  # appended by an attempt that ended before it could say so
            record = chain.chained(body, last, signer)
            data = (json.dumps(record, sort_keys=True) + "\n").encode()
            try:
                self._put_new(f"history/{record['seq']:010d}.json", data, hashlib.sha256(data).hexdigest())
                return record
            except Taken:
                last = self.head(after=record["seq"] - 1)
        raise StoreError(f"append to {self.url}history/: still losing the race after {APPEND_ATTEMPTS} attempts")

    def mirror(self, into: Path) -> list[str]:
        """Copy the store into ``into`` (``history.jsonl`` and ``runs/``), downloading only what changed.
        Returns the problems seen in the listing: objects overwritten or deleted after they were written."""
        versions: dict[str, list[dict]] = {}
        deleted: set[str] = set()
        marker = {}
        while True:
            page = self._call("list", "list_object_versions", Prefix=self.root, **marker)
            for version in page.get("Versions", []):
                versions.setdefault(version["Key"].removeprefix(self.root), []).append(version)
            deleted |= {m["Key"].removeprefix(self.root) for m in page.get("DeleteMarkers", [])}
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
        # S3 lists a key's versions newest first: the last one listed is the one written first
        first = {key: found[-1] for key, found in versions.items() if key.startswith(("history/", "runs/"))}
        problems = [f"{self.url}{key} was written {len(versions[key])} times (overwritten after it was written); the "
                    f"first version is used" for key in sorted(first) if len(versions[key]) > 1]
        problems += [f"{self.url}{key} was deleted (a delete marker hides it); the first version is used"
                     for key in sorted(deleted & set(first))]
        self._download(first, into)
        history = [into / key for key in sorted(first) if key.startswith("history/")]
        (into / chain.HISTORY_FILE).unlink(missing_ok=True)
        if history:  # no history objects: verify says there is no history
            (into / chain.HISTORY_FILE).write_bytes(b"".join(_line(p.read_bytes()) for p in history))
        return problems

    def _download(self, first: dict[str, dict], into: Path) -> None:
        manifest_file = into / ".versions.json"
        try:
            manifest = json.loads(manifest_file.read_text())
        except (OSError, ValueError):
            manifest = {}
        wanted = {key: f"{v.get('VersionId')}:{v.get('ETag')}" for key, v in first.items()}
        for path in [p for p in into.rglob("*") if p.is_file()] if into.exists() else []:
            if path.relative_to(into).as_posix() not in (*wanted, manifest_file.name, chain.HISTORY_FILE):
                path.unlink()  # gone from the store

        def fetch(key: str) -> None:
            version = first[key].get("VersionId")
            extra = {"VersionId": version} if version and version != "null" else {}
            body = self._call(f"read {key} from", "get_object", Key=self.root + key, **extra)["Body"].read()
            target = into / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)

        todo = [k for k, tag in wanted.items() if manifest.get(k) != tag or not (into / k).is_file()]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(fetch, todo))
        into.mkdir(parents=True, exist_ok=True)
        manifest_file.write_text(json.dumps(wanted))


def _line(data: bytes) -> bytes:
    return data if data.endswith(b"\n") else data + b"\n"


def default_mirror(store: EvidenceStore) -> Path:
    """``$XDG_CACHE_HOME/opsproof/evidence-store/<bucket>/<prefix>/<environment>`` (a cache: safe to delete)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "opsproof" / "evidence-store" / store.bucket / store.root.strip("/")


@dataclass
class Upload:
    """What one ``catch_up`` did: runs uploaded (run id, store seq), runs that could not be, and why it stopped."""

    uploaded: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pending: int = 0
    error: str | None = None


def catch_up(store: EvidenceStore, history_file: Path, signer=None) -> Upload:
    """Upload, oldest first, every local run record (with its artifacts) the store does not have yet.

    Stops at the first failure: the rest waits for the next run. Never raises for the store's sake.
    """
    state_file = history_file.with_name(STATE_FILE)
    state = _read_state(state_file, store.url)
    result = Upload()
    todo = [r for r in chain.read(history_file) if r["seq"] > state["uploaded_through"]]
    for index, record in enumerate(todo):
        try:
            if schema.is_run(record):
                _upload(store, record, history_file, signer, state, result)
            state["uploaded_through"] = record["seq"]
            _write_state(state_file, state)
        except (StoreError, OSError) as error:
            result.error = str(error) if isinstance(error, StoreError) else f"{state_file}: {error.strerror or error}"
            result.pending = sum(schema.is_run(r) for r in todo[index:])
            break
    return result


def _upload(store: EvidenceStore, record: dict, history_file: Path, signer, state: dict, result: Upload) -> None:
    base = history_file.parent
    missing = [a["name"] for a in record["artifacts"]
               if not (base / a["path"]).is_file() or sha256_file(base / a["path"]) != a["sha256"]]
    if missing:
        result.skipped.append(f"{record['run_id']}: {', '.join(missing)} no longer here as recorded")
        return
    folder = store.upload_run(record, base)
    written = store.append(_store_body(record, folder, history_file), signer, state.get("store_seq", 0))
    result.uploaded.append((record["run_id"], written["seq"]))
    state["store_seq"] = written["seq"]


def _store_body(record: dict, folder: str, history_file: Path) -> dict:
    """The store's record of a run: the local record's content, its artifacts under ``runs/<folder>/``, and
    where it came from (the runner's host, its local history, and the local record's seq and hash)."""
    body = {k: v for k, v in record.items() if k not in CHAIN_FIELDS}
    body["artifacts"] = [{**a, "path": f"runs/{folder}/{a['name']}"} for a in record["artifacts"]]
    body["source"] = {"runner": platform.node(), "history": str(history_file.resolve()), "seq": record["seq"],
                      "hash": record["hash"]}
    body["uploaded_at"] = now_utc()
    return body


def _read_state(path: Path, url: str) -> dict:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict) or state.get("url") != url or type(state.get("uploaded_through")) is not int:
        return {"url": url, "uploaded_through": 0}
    return state


def _write_state(path: Path, state: dict) -> None:
    pending = path.with_name(path.name + ".new")
    pending.write_text(json.dumps(state), encoding="utf-8")
    pending.replace(path)
