"""What a run sent, and whether it arrived: alerts, metrics pushed, metrics files written (results.json ``deliveries``).

A delivery never changes the verdict; its record says what happened to it, so a silent pager shows.

>>> Delivery(channel="webhook", name="chat", destination="https://hooks.example", outcome="sent", firing=1,
...          attempts=1, duration_s=0.05).line()
'webhook chat (https://hooks.example): sent 1 firing (1 attempt, 0.05s)'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["alertmanager", "webhook", "pushgateway", "textfile"]
DeliveryOutcome = Literal["sent", "nothing_to_send", "failed", "timed_out", "interrupted"]


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    name: str = Field("", description="the destination's key under notify: (empty for metrics)")
    destination: str = Field(description="scheme://host:port (no credentials, path or query), or a file path")
    outcome: DeliveryOutcome
    firing: int = Field(0, description="alerts sent as new failures")
    reminders: int = Field(0, description="alerts sent again: still failing after repeat_after (or send: every_run)")
    resolved: int = Field(0, description="alerts sent as resolved")
    attempts: int = 0
    duration_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("sent", "nothing_to_send")

    def line(self) -> str:
        """One terminal line: what was sent where, or why it was not."""
        where = f"{self.channel}{' ' + self.name if self.name else ''} ({self.destination})"
        counts = ", ".join(f"{n} {label}" for n, label in ((self.firing, "firing"), (self.reminders, "reminders"),
                                                           (self.resolved, "resolved")) if n)
        if self.outcome == "nothing_to_send":
            return f"{where}: nothing to send"
        tries = f"{self.attempts} attempt{'s' * (self.attempts != 1)}, {self.duration_s:g}s"
        if self.outcome == "sent" and self.channel == "textfile":
            return f"{where}: written"
        if self.outcome == "sent":
            return f"{where}: sent{' ' + counts if counts else ''} ({tries})"
        shown = self.outcome.upper().replace("_", " ")
        return f"{where}: {shown}{' (' + counts + ' not delivered)' if counts else ''} ({tries}): {self.error}"
