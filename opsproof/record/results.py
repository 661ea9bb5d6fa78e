"""results.json: the run, its environment and gate, every check record, the waivers; versioned, with a JSON Schema.

The schema ships beside this module (``results.schema.json``) and is generated from these models:
``python -m opsproof.record.results > opsproof/record/results.schema.json`` after changing one.
"""

from __future__ import annotations

import json
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from opsproof.record.check import CheckRecord, ShownWaiver
from opsproof.record.delivery import Delivery

SCHEMA_VERSION = 2  # 1: the files written before results.json carried a version
SCHEMA_FILE = "results.schema.json"


class RunEnvironment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    tier: str
    file: str
    chosen_by: str = Field(description="--env, $OPSPROOF_ENV or ini default")


class AppliedWaiver(ShownWaiver):
    checks: list[str] = Field(description="ids of the checks it waived in this run")


class StaleWaiver(ShownWaiver):
    reason: str


class WaiverSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applied: list[AppliedWaiver] = Field(default_factory=list)
    expired: list[ShownWaiver] = Field(default_factory=list)
    stale: list[StaleWaiver] = Field(default_factory=list)


class Results(BaseModel):
    """One run of opsproof, as results.json holds it."""

    model_config = ConfigDict(extra="forbid", title="opsproof results.json")

    schema_version: int = SCHEMA_VERSION
    opsproof_version: str
    environment: RunEnvironment
    suite: str
    gate: str
    fail_on_warn: bool
    started_at: str
    finished_at: str
    host: str
    exit_code: int
    interrupted: bool
    verdict: str
    checks: list[CheckRecord]
    waivers: WaiverSummary
    deliveries: list[Delivery] = Field(default_factory=list, description="alerts sent, metrics pushed and written")

    def to_dict(self) -> dict:
        return {**self.model_dump(exclude={"checks"}), "checks": [c.to_dict() for c in self.checks]}


def dumps(results: dict) -> str:
    """results.json's text: the run's fields indented, then one check per line, so it reads (and greps)
    well. json indents only in pure Python, which took seconds for a few thousand checks; each line here
    is written by its C encoder."""
    fields = [f"  {json.dumps(key)}: {json.dumps(value, default=str)}" for key, value in results.items()
              if key != "checks"]
    checks = ",\n".join(f"    {json.dumps(check, default=str)}" for check in results.get("checks", []))
    if "checks" in results:
        fields.insert(list(results).index("checks"), f'  "checks": [\n{checks}\n  ]' if checks else '  "checks": []')
    return "{\n" + ",\n".join(fields) + "\n}\n"


def schema() -> dict:
    """The JSON Schema of results.json, as generated from the models."""
    return Results.model_json_schema(mode="serialization")


def shipped_schema() -> dict:
    """The JSON Schema installed with the package."""
    return json.loads(resources.files("opsproof.record").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


if __name__ == "__main__":
    print(json.dumps(schema(), indent=2))
