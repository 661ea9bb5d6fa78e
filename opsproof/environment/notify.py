"""``notify:``: where a run's gating failures are sent, and when (alerts, not the reports themselves).

Delivery never changes a verdict: every attempt is bounded by ``timeout``, every destination by
``attempts``, and all of them together by ``deadline``. A ``${VAR}`` anywhere under ``notify:`` is a
secret (a webhook URL is its own credential), and so are header values.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from opsproof.environment.base import Duration, Model
from opsproof.environment.web import Name, Url

DEFAULT_REPEAT_AFTER_S = 86400.0


class Destination(Model):
    """One receiver: its URL and the headers sent with every request (``Authorization: Bearer ${TOKEN}``)."""

    name: str = ""
    url: Url
    headers: dict[str, SecretStr] = Field(default_factory=dict)


class AlertmanagerDestination(Destination):
    """``POST <url>/api/v2/alerts``: one alert per gating failure, resolved when the check passes again."""

    expires_after: Duration | None = Field(
        None, description="endsAt of a firing alert, from when it is sent (default: twice repeat_after); it must "
                          "outlast the time to the next run after repeat_after, or Alertmanager resolves it itself")


class WebhookDestination(Destination):
    """A JSON POST with a Slack/Mattermost ``text`` field and the alerts under ``opsproof``."""


class Notify(Model):
    alertmanager: dict[Name, AlertmanagerDestination] = Field(default_factory=dict)
    webhook: dict[Name, WebhookDestination] = Field(default_factory=dict)
    send: Literal["changes", "every_run"] = Field(
        "changes", description="changes: new failures, resolutions and reminders; every_run: every failure each run")
    repeat_after: Duration = Field(DEFAULT_REPEAT_AFTER_S, description="a failure still failing this long after it "
                                                                       "was last sent is sent again (a reminder)")
    timeout: Annotated[Duration, Field(le=120)] = Field(5.0, description="each attempt, connect to last byte")
    attempts: Annotated[int, Field(ge=1, le=10)] = 3
    deadline: Annotated[Duration, Field(le=600)] = Field(30.0, description="every delivery of a run together")

    @model_validator(mode="before")
    @classmethod
    def _name_destinations(cls, data):
        """Each destination learns its name from its key, as targets do."""
        if not isinstance(data, dict):
            return data
        named = dict(data)
        for section in ("alertmanager", "webhook"):
            entries = data.get(section)
            if isinstance(entries, dict):
                named[section] = {key: {**spec, "name": key} if isinstance(spec, dict) else spec
                                  for key, spec in entries.items()}
        return named

    @model_validator(mode="after")
    def _bounds_agree(self):
        if not self.alertmanager and not self.webhook:
            raise ValueError("name at least one destination under alertmanager: or webhook:")
        if self.timeout > self.deadline:
            raise ValueError(f"timeout ({self.timeout:g}s) must not be above deadline ({self.deadline:g}s)")
        for name, destination in self.alertmanager.items():
            if destination.expires_after is not None and destination.expires_after <= self.repeat_after:
                raise ValueError(f"alertmanager.{name}.expires_after ({destination.expires_after:g}s) must be above "
                                 f"repeat_after ({self.repeat_after:g}s): a firing alert would resolve itself before "
                                 f"the reminder renews it")
        return self

    def expires_after(self, destination: AlertmanagerDestination) -> float:
        return destination.expires_after or 2 * self.repeat_after
