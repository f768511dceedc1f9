"""The plant simulator: an asyncua OPC UA server with realistic, seeded dynamics.

    sim = PlantSimulator(port=free_port(), seed=1)
    await sim.start()      # server up, every tag at its initial value
    ...subscribe...
    sim.begin()            # dynamics on
    sim.hold()             # dynamics off (server still up)
    await sim.stop()
    sim.published()        # node id -> [(source_ns, value, status), ...]

Also ``python -m edge.sim --port N --seed S``.
"""

from edge.sim.plant import NAMESPACE_URI, TICK_MS, PlantModel, SimTag
from edge.sim.server import PlantSimulator, datetime_ns, free_port

__all__ = ["NAMESPACE_URI", "TICK_MS", "PlantModel", "PlantSimulator", "SimTag", "datetime_ns", "free_port"]
