"""The sandbox's process helpers: the generic ones live in opsproof.processes (the drill uses them too)."""

from opsproof.errors import SandboxError  # noqa: F401 - re-exported for the sandbox components
from opsproof.processes import (  # noqa: F401 - re-exported for the sandbox components
    alive,
    free_port,
    require_binary,
    run_unprivileged,
    stop_pid,
    unprivileged_user,
    wait_for_port,
)
