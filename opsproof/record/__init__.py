"""The one typed record of a run, from evidence to results.json, the HTML report and the readiness report.

No pytest here: the plugin (fixtures/) builds these, the drills (opsproof/drills/)
return them, and every output renders them. results.json itself is ``opsproof.record.results``.
"""

from opsproof.record.check import CheckRecord, Phase, ShownWaiver, merge
from opsproof.record.delivery import Delivery
from opsproof.record.drill import DrillRecord, Step
from opsproof.record.measurement import Measurement, described, plain

__all__ = ["CheckRecord", "Delivery", "DrillRecord", "Measurement", "Phase", "ShownWaiver", "Step", "described", "merge",
           "plain"]
