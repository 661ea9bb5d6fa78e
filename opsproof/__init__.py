"""opsproof: operations runbooks as executable, evidence-producing checks."""

__version__ = "0.1.0"
