"""What the release under test expects, from the command line: ``--expect-version`` and ``--expect-migration``.

A bare value applies to what declares one in the environment file (a workload's ``version``, an HTTP
target's ``version``, a schemas target's ``migrations``); ``NAME=VALUE`` applies to what NAME names, or to
every member of the release group NAME. A value never reaches what
declares nothing and belongs to no named group: a postgres StatefulSet is not held to the API's tag.

>>> flags = Overrides.parse("--expect-version", ["1.4.3", "worker=1.4.4", "shop=1.4.3"])
>>> flags.lookup(Subject(("worker", "shop/worker"), release="shop", declared=False))
('1.4.4',)
>>> flags.lookup(Subject(("postgres",), release=None, declared=False))
()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BeforeValidator, StringConstraints

Release = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


def _text(value):
    """A version or revision as written: ``20240612093000`` (YAML reads an int) is fine; ``1.10`` is not,
    since YAML has already made it the number 1.1."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError(f"{value!r} was read as a number (YAML turns 1.10 into 1.1): quote it as written")
    return str(value) if isinstance(value, int) else value


Revision = Annotated[str, BeforeValidator(_text), StringConstraints(min_length=1, max_length=255)]


@dataclass(frozen=True)
class Subject:
    """Something an override can reach: the names it answers to, its release group, and whether the
    environment file declares its expectation itself."""

    names: tuple[str, ...]
    release: str | None
    declared: bool
    label: str = ""  # how errors name it: "workload shop/Deployment/api"


@dataclass(frozen=True)
class Overrides:
    option: str
    bare: tuple[str, ...] = ()
    named: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, option: str, values: Iterable[str] | None) -> Overrides:
        bare: list[str] = []
        named: dict[str, list[str]] = {}
        for value in values or ():
            name, sep, given = value.partition("=")
            if not sep:
                bare.append(value.strip())
            elif not name.strip() or not given.strip():
                raise ValueError(f"{option} {value}: write VALUE or NAME=VALUE")
            else:
                named.setdefault(name.strip(), []).append(given.strip())
        if any(not value for value in bare):
            raise ValueError(f"{option}: an empty value")
        return cls(option, tuple(bare), {name: tuple(given) for name, given in named.items()})

    def __bool__(self) -> bool:
        return bool(self.bare or self.named)

    def lookup(self, subject: Subject) -> tuple[str, ...]:
        """The values for ``subject``: its own name first, then its release group, then a bare value
        if it declares an expectation; ``()`` when the command line says nothing about it."""
        for name in subject.names:
            if name in self.named:
                return self.named[name]
        if subject.release and subject.release in self.named:
            return self.named[subject.release]
        return self.bare if subject.declared else ()

    def unmatched(self, subjects: list[Subject], where: str, declares: str) -> str | None:
        """Why these flags reach nothing they were meant for in the environment file ``where`` (a mistyped
        name, a bare value that nothing ``declares``), or None."""
        known = {name for s in subjects for name in s.names} | {s.release for s in subjects if s.release}
        for name, values in self.named.items():
            if name not in known:
                return f"{self.option} {name}={values[0]}: nothing in {where} is named {name!r}, nor is a release group"
        if self.bare and not any(s.declared for s in subjects):
            return (f"{self.option} {self.bare[0]}: nothing in {where} declares {declares}, so it would check "
                    f"nothing; say what it is for: {self.option} NAME={self.bare[0]}")
        return None
