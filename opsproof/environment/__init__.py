"""Environment files: the expectations, validated into a typed model before any check runs."""

from opsproof.environment.loader import LoadedEnvironment, find_environment, load_environment
from opsproof.environment.model import KINDS, Environment

__all__ = ["KINDS", "Environment", "LoadedEnvironment", "find_environment", "load_environment"]
