"""Inspection rules: (results, metric history, inventory) of hosts -> findings with stable keys.

A rule is a declaration (:class:`Rule`) naming what it reads (checks, result keys,
metric names: a test checks each one against the check declarations) and a pure
function returning :class:`Hit` values. A host rule sees one answered host
(:class:`~collector.inspections.facts.HostFacts`); a fleet rule sees every selected host
of the customer (version drift, hosts that did not answer). Wording lives in
:mod:`collector.inspections.catalogue`; a hit carries only the values.

Most rules repeat a check's own non-OK verdict of the latest run and add evidence from
the metric history; several also fire from the history alone when the latest run
happened to be fine (the average over the period tells more than one sample). The
thresholds for history-only hits are the constants of :mod:`.base`.

Each rule is declared where it is written, with :func:`~.base.rule` above its function,
in the module of its layer (:mod:`.host`, :mod:`.network`, :mod:`.storage`,
:mod:`.platform`, :mod:`.application`).

>>> from checks.api import Severity
>>> from collector.inspections.facts import HostFacts, ResultFact
>>> host = HostFacts("db1", results=(ResultFact("platform.reboot_required", "REBOOT_REQUIRED",
...                                             Severity.WARN, "Reboot required"),))
>>> [(h.severity.value, h.template) for h in RULES["REBOOT_REQUIRED"].host(host)]
[('WARN', 'result')]
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from checks.api import Layer

# Imported for their declarations.
from collector.inspections.rules import application, host, network, platform, storage  # noqa: F401
from collector.inspections.rules.base import Hit, Rule, RuleKind, declared

__all__ = ["RULES", "Hit", "Rule", "RuleKind"]

_LAYER_ORDER = (Layer.HOST, Layer.NETWORK, Layer.STORAGE, Layer.PLATFORM, Layer.APPLICATION)

RULES: Mapping[str, Rule] = MappingProxyType(
    {r.key: r for r in sorted(declared(), key=lambda r: _LAYER_ORDER.index(r.layer))}
)
"""Every rule by key, lowest layer first."""
