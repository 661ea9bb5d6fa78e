"""The version an HTTP target must serve: read from a JSON field or a header, in N of N requests.

Each sample is a new connection through the load balancer, so after a blue-green switch an old
instance that still answers shows up in the split: ``{'1.4.3': 17, '1.4.2': 3}``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from opsproof.environment.base import Model
from opsproof.environment.overrides import Release, Revision


class HttpVersion(Model):
    path: str = "/version"
    json_path: str | None = Field(None, alias="json", description="dotted path into the JSON body")
    header: str | None = Field(None, description="a response header holding the version")
    expected: Revision | None = Field(None, description="the version every sample must show; --expect-version "
                                                        "overrides it")
    samples: Annotated[int, Field(ge=1, le=1000)] = 20
    release: Release | None = Field(None, description="release group: --expect-version GROUP=TAG sets it")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.json_path is None) == (self.header is None):
            raise ValueError("give json (a dotted path into the body) or header, not both or neither")
        return self
