"""``opsproof history verify`` and ``opsproof prune``, and where a history is read from (local or the store)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from opsproof.errors import ConfigError
from opsproof.history.chain import HistoryError, history_path
from opsproof.history.verify import Trust, Verification, verify

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 4


@dataclass
class Source:
    """A history to read: the environment's settings, the history file, the folder its runs live in."""

    settings: dict
    env_file: Path
    history_file: Path
    runs_dir: Path
    reports_dir: Path
    trust: Trust = field(default_factory=Trust)
    store_url: str | None = None  # read from the evidence store (copied to history_file's folder)
    store_problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.store_url}history/" if self.store_url else str(self.history_file)

    def verify(self) -> Verification:
        result = verify(self.history_file, runs_dir=self.runs_dir, trust=self.trust)
        result.problems[:0] = self.store_problems
        return result


def locate(args: argparse.Namespace, root: Path, from_store: bool | None = None) -> Source:
    """The environment's history: from its evidence store when ``from_store``, or (None) when there is no local
    one and a store is set (a fresh checkout). Raises ConfigError (exit 4), StoreError (the store cannot be read)."""
    from opsproof.environment import find_environment
    from opsproof.environment.loader import environment_settings

    env_file = find_environment(args.env, root / "environments")
    settings = environment_settings(env_file)
    reports = Path(args.reports_dir).resolve() if getattr(args, "reports_dir", None) else root / "reports"
    local = history_path(reports, settings["name"], settings.get("history_dir"), env_file)
    trust = trust_for(settings, env_file, getattr(args, "public_key", None))
    source = Source(settings, env_file, local, reports / settings["name"], reports, trust)
    if from_store is None:
        from_store = bool(settings.get("evidence_store")) and not local.exists()
    if not from_store:
        return source
    from opsproof.history.store import default_mirror

    store = open_store(env_file, settings)
    mirror = default_mirror(store)
    print(f"reading the history from the evidence store {store.url} (copied to {mirror})", file=sys.stderr)
    problems = store.mirror(mirror)
    return Source(settings, env_file, mirror / local.name, mirror / "runs", reports, trust, store.url, problems)


def open_store(env_file: Path, settings: dict):
    from pydantic import ValidationError

    from opsproof.environment.evidence_store import EvidenceStore
    from opsproof.environment.loader import resolved_section
    from opsproof.history.store import EvidenceStore as Store

    if not settings.get("evidence_store"):
        raise ConfigError(str(env_file), "evidence_store", "not set: there is no evidence store to read")
    try:
        model = EvidenceStore.model_validate(resolved_section(env_file, "evidence_store"))
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(["evidence_store", *map(str, first["loc"])])
        raise ConfigError(str(env_file), where, first["msg"].removeprefix("Value error, ")) from None
    return Store(model, settings["name"])


def trust_for(settings: dict, env_file: Path, given: list[str] | None) -> Trust:
    """The keys to verify against: ``--public-key``, else ``history_public_key``, else the public half of
    ``history_signing_key`` when it can be read here; none (the first signed record's key) otherwise."""
    from opsproof.environment.loader import resolved_section

    if not (given or settings.get("history_public_key") or settings.get("history_signing_key")):
        return Trust()
    from opsproof.history import signing

    for values, source, key in ((given, "--public-key", ""),
                                (settings.get("history_public_key"), f"history_public_key in {env_file}",
                                 "history_public_key")):
        if values:
            try:
                return Trust(tuple(signing.pinned(values, env_file)), source)
            except ValueError as error:
                raise ConfigError(str(env_file) if key else "--public-key", key, str(error)) from None
    try:
        signer = signing.load_signer(resolved_section(env_file, "history_signing_key"), env_file)
    except (ConfigError, ValueError):
        return Trust()
    return Trust((signer.fingerprint,), f"history_signing_key in {env_file}")


def verify_command(args: argparse.Namespace, root: Path) -> int:
    from opsproof.history.store import StoreError

    try:
        source = locate(args, root, True if args.from_store else None)
    except ConfigError as error:
        print(f"opsproof: {error}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as error:
        print(f"opsproof: evidence store: {error}", file=sys.stderr)
        return EXIT_FAILED
    result = source.verify()
    for problem in result.problems:
        print(f"TAMPERED {source.label}: {problem}")
    for note in result.notes:
        print(f"NOTE {source.label}: {note}")
    if result.ok:
        print(f"history intact: {source.label} ({result.records} records, chain and artifact hashes verified; "
              f"{result.signing_line()})")
        return EXIT_OK
    print(f"history verification FAILED: {len(result.problems)} problem(s) in {source.label}")
    return EXIT_FAILED


def prune_command(args: argparse.Namespace, root: Path) -> int:
    """Remove run folders older than ``--keep`` under the environment-wide lock, recording them first."""
    from opsproof.environment.base import parse_duration
    from opsproof.history import prune
    from opsproof.runlock import EXIT_LOCKED, RunLock, RunLocked, wait_seconds

    try:
        try:
            keep_s = parse_duration(args.keep)
        except ValueError as error:
            raise ValueError(f"--keep: {error}") from None
        if args.keep_last < 0:
            raise ValueError(f"--keep-last: {args.keep_last} is negative")
        wait_s = wait_seconds(args.wait_lock)
        source = locate(args, root, from_store=False)
        signer = _signer(source)
    except (ValueError, ConfigError) as error:
        print(f"opsproof: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        lock = RunLock(source.history_file.parent, source.settings["name"], "prune", exclusive=True)
        lock.acquire(wait_s)
    except RunLocked as refused:
        print(f"opsproof: {refused}", file=sys.stderr)
        return EXIT_LOCKED
    except OSError as error:
        print(f"opsproof: prune: cannot lock {source.history_file.parent}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    try:
        checked = source.verify()
        if not checked.ok:  # what is pruned can no longer show what was changed
            print(f"opsproof: prune refused: the history does not verify ({'; '.join(checked.problems[:3])}); "
                  f"see opsproof history verify", file=sys.stderr)
            return EXIT_FAILED
        chosen = prune.plan(source.history_file, source.runs_dir, keep_s, args.keep_last, args.include_drills)
        for run in chosen.prune:
            print(f"{'would prune' if args.dry_run else 'prune'}  {run['run_id']} (suite {run['suite']}, started "
                  f"{run['started_at']}, {run['bytes'] / 1e6:.1f} MB)")
        for run_id in chosen.kept_for_drills:
            print(f"keep   {run_id}: holds a drill record (kept {prune.DRILL_KEEP_DAYS} days; --include-drills)")
        for line in chosen.refused:
            print(f"keep   {line}")
        freed = sum(run["bytes"] for run in chosen.prune) / 1e6
        if args.dry_run or not chosen.prune:
            print(f"{'would prune' if args.dry_run else 'pruned'} {len(chosen.prune)} run folder(s) older than "
                  f"{args.keep} ({freed:.1f} MB); nothing written")
            return EXIT_OK
        settings = {"keep": args.keep, "keep_last": args.keep_last, "include_drills": args.include_drills}
        written = prune.apply(chosen, source.history_file, settings, signer)
    except (HistoryError, OSError) as error:
        print(f"opsproof: prune: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        lock.release()
    print(f"pruned {len(chosen.prune)} run folder(s) older than {args.keep} ({freed:.1f} MB); recorded as history seq "
          f"{written['seq']} in {source.history_file}")
    return EXIT_OK


def _signer(source: Source):
    """The key the runs sign with, so the prune record is signed like them (a key named but not readable is
    an error, not an unsigned record among signed ones)."""
    if not source.settings.get("history_signing_key"):
        return None
    from opsproof.environment.loader import resolved_section
    from opsproof.history import signing

    try:
        return signing.load_signer(resolved_section(source.env_file, "history_signing_key"), source.env_file)
    except ValueError as error:
        raise ConfigError(str(source.env_file), "history_signing_key", str(error)) from None
