"""The run history: one JSON line per run, chained by hashes and signed when the environment names a key.

``chain`` appends (atomically, setting a torn last line aside), ``signing`` signs and checks signatures,
``verify`` judges a history, ``prune`` removes old run folders under a retention policy, ``store`` keeps
runs and a shared chain in S3-compatible object storage.
"""

from opsproof.history.chain import GENESIS, HISTORY_FILE, HistoryError, append, history_path, read, record_hash
from opsproof.history.record import ARTIFACTS, git_revision, operator, record_for_run, sha256_file
from opsproof.history.verify import Trust, Verification, pruned_artifacts, trusted_runs, verify

__all__ = ["ARTIFACTS", "GENESIS", "HISTORY_FILE", "HistoryError", "Trust", "Verification", "append", "git_revision",
           "history_path", "operator", "pruned_artifacts", "read", "record_for_run", "record_hash", "sha256_file",
           "trusted_runs", "verify"]
