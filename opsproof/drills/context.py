"""What the steps of one DR drill share: the scenario, the environment and its file, and their connections.

Each step type is ``step(step, context) -> do(deadline)``, found by name in ``STEP_TYPES`` (the sandbox's
actions live in its own package: the engine never imports it). ``shared`` keeps what several steps of
one drill use (the sandbox's state, an ssh connection); ``closers`` run when the drill ends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opsproof.errors import first_line

STEP_TYPES = {
    "run": "opsproof.drills.command:step",
    "promote": "opsproof.drills.acting:promote_step",
    "restore": "opsproof.drills.restore:step",
    "wait_healthy": "opsproof.drills.health:step",
    "sandbox": "opsproof.sandbox.drill:step",
}


@dataclass
class DrillContext:
    scenario: object  # opsproof.environment.dr.DrScenario
    environment: object  # the Environment the scenario belongs to
    env_file: Path | None = None  # its file: the checks' inner runs read it
    record: object | None = None  # the DrillRecord being filled: a restore step names its backup there
    shared: dict[str, object] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def target(self, ref: str):
        """``postgres.main`` -> that target of the environment (the loader made sure it exists)."""
        kind, _, name = ref.partition(".")
        return self.environment.targets(kind)[name]

    def once(self, key: str, make: Callable[[], object]):
        """``make()`` the first time a step of this drill asks for ``key``; the same object after."""
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]

    def close(self) -> list[str]:
        """Run the closers, last first; what could not be closed, one line each."""
        problems = []
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception as error:  # noqa: BLE001 - the record says what stayed open
                problems.append(first_line(error))
        self.closers.clear()
        return problems
