"""The shapes of history records (run, prune, torn): a record with a wrong type is named, never a crash."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

Hex64 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


def _iso_time(value: str) -> str:
    datetime.fromisoformat(value)
    return value


Time = Annotated[StrictStr, AfterValidator(_iso_time)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class Artifact(_Shape):
    name: StrictStr
    path: StrictStr
    sha256: Hex64


class Link(_Shape):
    """What every record has: its place in the chain, and a signature when a key signed it."""

    seq: Annotated[StrictInt, Field(ge=1)]
    hash: Hex64
    prev_hash: Hex64
    type: Literal["run", "prune", "torn"] = "run"
    recorded_at: Time | None = None
    signed_by: StrictStr | None = None
    public_key: StrictStr | None = None
    signature: StrictStr | None = None


class RunRecord(Link):
    run_id: StrictStr
    suite: StrictStr
    started_at: Time
    finished_at: Time
    verdict: StrictStr
    exit_code: StrictInt
    counts: dict[StrictStr, StrictInt]
    artifacts: list[Artifact]


class PrunedRun(_Shape):
    run_id: StrictStr
    seq: StrictInt
    artifacts: list[Artifact]


class PruneRecord(Link):
    keep: StrictStr
    pruned: list[PrunedRun]


class TornRecord(Link):
    set_aside: StrictStr
    bytes: StrictInt
    sha256: Hex64
    unrecorded: list[StrictStr]


SHAPES = {"run": RunRecord, "prune": PruneRecord, "torn": TornRecord}


def problem(record) -> str | None:
    """What is wrong with a record's shape, in one line (``seq: Input should be a valid integer``), or None."""
    if not isinstance(record, dict):
        return f"not a record (a JSON {type(record).__name__})"
    shape = SHAPES.get(record.get("type", "run")) if isinstance(record.get("type", "run"), str) else None
    try:
        (shape or Link).model_validate(record)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_input=False)
        where = ".".join(str(part) for part in errors[0]["loc"])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{where}: {errors[0]['msg']}{more}"
    return None


def is_run(record: dict) -> bool:
    """A well-shaped run record: what readiness may read."""
    return record.get("type", "run") == "run" and problem(record) is None
