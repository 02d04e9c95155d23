"""What the registry knows of one loaded plugin (engine/registry.py loads them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PluginInfo:
    """One loaded plugin: its entry-point name, distribution and what it registered.

    ``unavailable`` maps the encoders it registered that cannot write here to the reason;
    ``problem`` says why the plugin is broken ("" when it is not); ``deprecations`` what it uses
    that the contract will remove (each a :class:`~pixline.engine.contract.PixlineDeprecationWarning`).
    """

    name: str
    distribution: str
    version: str
    steps: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)
    analysers: list[str] = field(default_factory=list)
    gravities: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    deprecations: list[str] = field(default_factory=list)
    #: Other warnings about the installation (two distributions of one name).
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``ok``, ``deprecated`` (works, and warns) or ``broken`` (left out)."""
        return "broken" if self.problem else "deprecated" if self.deprecations else "ok"

    def describe(self) -> str:
        """How messages name it: ``plugin 'sepia' from pixline-sepia 1.2.3``."""
        return f"plugin {self.name!r} from {self.distribution} {self.version}".rstrip()

    def as_dict(self) -> dict[str, Any]:
        """What ``pixline plugins --json`` prints of it."""
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "status": self.status, "problem": self.problem, "deprecations": self.deprecations,
                "warnings": self.warnings, "steps": self.steps, "encoders": self.encoders,
                "analysers": self.analysers, "gravities": self.gravities, "metrics": self.metrics,
                "unavailable": self.unavailable}
