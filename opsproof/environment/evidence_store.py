"""Where runs are kept off the runner: an S3-compatible bucket prefix, with Object Lock retention if wanted.

``evidence_store: s3://bucket/prefix`` is short for ``{url: s3://bucket/prefix}``; ``s3`` takes the
settings a backup set's ``s3`` takes (endpoint, region, ``${VAR}`` credentials, timeout).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from opsproof.environment.backups import S3Settings
from opsproof.environment.base import Model

StoreUrl = Annotated[str, StringConstraints(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")]


class ObjectLock(Model):
    """Retention set on every object uploaded (the bucket must have been created with Object Lock)."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: Annotated[int, Field(ge=1, le=36500)]


class EvidenceStore(Model):
    url: StoreUrl = Field(description="s3://bucket/prefix; runs go under <prefix>/<environment>/")
    s3: S3Settings = Field(default_factory=S3Settings)
    object_lock: ObjectLock | None = None

    @model_validator(mode="before")
    @classmethod
    def _url_alone(cls, value):
        return {"url": value} if isinstance(value, str) else value

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://").partition("/")[0]

    @property
    def prefix(self) -> str:
        return self.url.removeprefix("s3://").partition("/")[2].strip("/")
