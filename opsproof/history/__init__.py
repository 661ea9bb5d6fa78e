"""The run history: one JSON line per run, each carrying the hash of the one before it (see ``chain``)."""

from opsproof.history.chain import (
    ARTIFACTS,
    GENESIS,
    HISTORY_FILE,
    Verification,
    append,
    artifact_problems,
    git_revision,
    history_path,
    operator,
    read,
    record_for_run,
    record_hash,
    sha256_file,
    unrecorded_runs,
    verify,
)

__all__ = ["ARTIFACTS", "GENESIS", "HISTORY_FILE", "Verification", "append", "artifact_problems", "git_revision",
           "history_path", "operator", "read", "record_for_run", "record_hash", "sha256_file", "unrecorded_runs",
           "verify"]
