"""The deterministic plant model behind the simulator (no OPC UA, no clock).

The plant is a fixed hierarchy ``Plant/<Area>/<Unit>/<Tag>``: four areas, each
with pumps, tanks and flow meters. Time advances in ticks of
:data:`TICK_MS` (500 ms). Each tag has a period of one or two ticks; on its
ticks the unit computes a new reading (noisy, quantised to the instrument's
resolution around a slowly moving operating point) and the model reports it
only if value or status differs from what was last reported. The sequence of
changes depends only on the seed, so two models with the same seed produce the
same values; :class:`edge.sim.PlantSimulator` adds wall-clock timestamps.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TICK_MS = 500
NAMESPACE_URI = "urn:tidegate:sim"
NS_INDEX = 2  # first namespace registered after the server's own (index 1)

GOOD = 0x00000000
UNCERTAIN_LAST_USABLE = 0x40900000  # UncertainLastUsableValue
UNCERTAIN_NOT_ACCURATE = 0x40930000  # UncertainSensorNotAccurate
BAD_SENSOR_FAILURE = 0x808C0000  # BadSensorFailure
BAD_COMM_ERROR = 0x80050000  # BadCommunicationError

# UNECE common code -> (display, description); the OPC UA UnitId is derived
# from the code (Part 8 EUInformation: the code's ASCII bytes, big-endian).
UNITS: dict[str, tuple[str, str]] = {
    "RPM": ("rpm", "revolutions per minute"),
    "AMP": ("A", "ampere"),
    "BAR": ("bar", "bar"),
    "CEL": ("°C", "degree Celsius"),
    "C16": ("mm/s", "millimetre per second"),
    "SEC": ("s", "second"),
    "P1": ("%", "percent"),
    "MQH": ("m³/h", "cubic metre per hour"),
    "LTR": ("l", "litre"),
    "KMQ": ("kg/m³", "kilogram per cubic metre"),
}


def unece_unit_id(code: str) -> int:
    uid = 0
    for ch in code:
        uid = (uid << 8) | ord(ch)
    return uid


_F32 = struct.Struct("<f")


def f32(x: float) -> float:
    """The float32 nearest to x, as the Python float a client will decode."""
    return float(_F32.unpack(_F32.pack(x))[0])


@dataclass(frozen=True)
class SimTag:
    """One simulated variable as a client sees it."""

    node_id: str  # "ns=2;s=Plant.Area1.Pump01.Speed"
    name: str  # "Plant.Area1.Pump01.Speed" (unique, = the string identifier)
    browse_path: str  # "Plant/Area1/Pump01/Speed" (below Objects)
    browse_name: str  # "Speed"
    data_type: str  # OPC UA built-in type name
    unit: str = ""  # display unit ("" if none)
    unece: str = ""  # UNECE common code ("" if none)
    range_low: float | None = None
    range_high: float | None = None
    period_ms: int = 1000  # the tag changes at most once per period
    description: str = ""

    @property
    def analog(self) -> bool:
        return self.range_low is not None


# (value, status) of one tag at one tick
Reading = tuple[Any, int]


class Unit:
    """A piece of equipment: a group of tags sharing one state machine."""

    kind = ""

    def __init__(self, area: int, number: int, seed: int, phase: int) -> None:
        self.area = area
        self.number = number
        self.name = f"{self.kind}{number:02d}"
        self.prefix = f"Plant.Area{area}.{self.name}"
        # Independent stream per unit: adding a unit never shifts another's values.
        self.rng = random.Random(f"{seed}:{area}:{self.name}")
        self.phase = phase
        self.tags: list[SimTag] = []
        self._periods: list[int] = []

    def tag(self, name: str, data_type: str, period_ms: int = 1000, unece: str = "",
            lo: float | None = None, hi: float | None = None, description: str = "") -> None:
        path = f"{self.prefix}.{name}"
        self.tags.append(SimTag(
            node_id=f"ns={NS_INDEX};s={path}", name=path, browse_path=path.replace(".", "/"),
            browse_name=name, data_type=data_type, unit=UNITS[unece][0] if unece else "",
            unece=unece, range_low=lo, range_high=hi, period_ms=period_ms,
            description=description or f"{self.kind} {name}"))
        self._periods.append(period_ms // TICK_MS)

    def due(self, tick: int) -> list[bool]:
        return [(tick + self.phase) % p == 0 for p in self._periods]

    def step(self, tick: int) -> list[Reading]:
        """Advance one tick; return the reading of every tag (used where due)."""
        raise NotImplementedError

    # helpers -----------------------------------------------------------
    def noise(self, sigma: float) -> float:
        return self.rng.gauss(0.0, sigma)

    def walk(self, x: float, target: float, pull: float, sigma: float) -> float:
        """A mean-reverting random walk (a slow operating point)."""
        return x + pull * (target - x) + self.noise(sigma)


def _q(x: float, decimals: int) -> float:
    return round(x, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


class Pump(Unit):
    kind = "Pump"

    def __init__(self, area: int, number: int, seed: int, phase: int) -> None:
        super().__init__(area, number, seed, phase)
        self.tag("Running", "Boolean", description="motor running feedback")
        self.tag("Speed", "Double", 1000, "RPM", 0, 1800, "motor speed")
        self.tag("Current", "Float", 1000, "AMP", 0, 80, "motor current")
        self.tag("DischargePressure", "Double", 500, "BAR", 0, 10, "discharge pressure")
        self.tag("BearingTemp", "Float", 1000, "CEL", -20, 150, "drive-end bearing temperature")
        self.tag("Vibration", "Float", 500, "C16", 0, 25, "bearing vibration velocity RMS")
        self.tag("RunSeconds", "Int64", 1000, "SEC", description="running-time totaliser")
        self.tag("Starts", "Int32", description="start counter")
        self.tag("Mode", "String", description="AUTO / MANUAL / MAINT")
        self.tag("FaultCode", "UInt16", description="drive fault code, 0 = none")
        r = self.rng
        self.running = r.random() < 0.8
        self.speed_sp = 1350.0 + 100.0 * r.random()
        self.speed = self.speed_sp if self.running else 0.0
        self.temp = 52.0 if self.running else 24.0
        self.run_s = r.randrange(1_000_000, 90_000_000)
        self.starts = r.randrange(10, 5000)
        self.mode = "AUTO"
        self.fault = 0
        self.fault_ticks = 0
        self.vib_base = 1.5 + r.random()
        self.ticks = 0

    def step(self, tick: int) -> list[Reading]:
        r = self.rng
        self.ticks += 1
        if self.fault_ticks > 0:
            self.fault_ticks -= 1
            if self.fault_ticks == 0:
                self.fault = 0
        elif r.random() < 0.0004:  # a trip
            self.fault, self.fault_ticks, self.running = r.choice((101, 205, 317)), 20, False
        if r.random() < 0.0008:
            self.mode = r.choice(("MANUAL", "MAINT")) if self.mode == "AUTO" else "AUTO"
        if self.fault == 0 and self.mode != "MAINT" and r.random() < 0.003:
            self.running = not self.running
            if self.running:
                self.starts += 1
        if self.mode == "MAINT":
            self.running = False
        self.speed_sp = min(1750.0, max(900.0, self.walk(self.speed_sp, 1400.0, 0.002, 1.5)))
        target = self.speed_sp if self.running else 0.0
        self.speed += 0.35 * (target - self.speed)
        speed = max(0.0, self.speed + (self.noise(0.8) if self.running else 0.0))
        load = speed / 1480.0
        current = 42.0 * load ** 3 + (0.6 if self.running else 0.0) + self.noise(0.04)
        pressure = 0.05 + 4.2 * load ** 2 + self.noise(0.004)
        self.temp += (24.0 + 30.0 * load - self.temp) / 240.0
        temp = self.temp + self.noise(0.03)
        vib = (self.vib_base * load + 0.05 + abs(self.noise(0.03))) if self.running else 0.02
        if self.running and self.ticks % 2 == 0:
            self.run_s += 1
        return [
            (self.running, GOOD),
            (_q(speed, 0), GOOD),
            (f32(_q(max(current, 0.0), 1)), GOOD),
            (_q(max(pressure, 0.0), 2), GOOD),
            (f32(_q(temp, 1)), GOOD),
            (f32(_q(vib, 2)), GOOD),
            (self.run_s, GOOD),
            (self.starts, GOOD),
            (self.mode, GOOD),
            (self.fault, GOOD),
        ]


class Tank(Unit):
    kind = "Tank"

    def __init__(self, area: int, number: int, seed: int, phase: int) -> None:
        super().__init__(area, number, seed, phase)
        self.tag("Level", "Double", 1000, "P1", 0, 100, "level")
        self.tag("Temperature", "Float", 1000, "CEL", 0, 120, "content temperature")
        self.tag("Pressure", "Double", 1000, "BAR", -1, 6, "head-space pressure")
        self.tag("InletValve", "Boolean", description="inlet valve open")
        self.tag("OutletValve", "Boolean", description="outlet valve open")
        self.tag("Agitator", "Boolean", description="agitator running")
        self.tag("BatchId", "String", description="current batch")
        self.tag("AlarmWord", "UInt16", description="bit 0 LL, 1 L, 2 H, 3 HH")
        self.tag("FillCount", "Int32", description="completed fills")
        r = self.rng
        self.level = 20.0 + 60.0 * r.random()
        self.filling = r.random() < 0.5
        self.temp_sp = 35.0 + 40.0 * r.random()
        self.temp = self.temp_sp
        self.fills = r.randrange(100, 9000)
        self.batch = self._batch_id()
        self.fill_rate = 0.08 + 0.06 * r.random()  # % per tick

    def _batch_id(self) -> str:
        return f"B{self.area}{self.number:02d}-{self.fills:05d}"

    def step(self, tick: int) -> list[Reading]:
        r = self.rng
        if self.filling:
            self.level += self.fill_rate + self.noise(0.01)
            if self.level >= 90.0:
                self.filling = False
        else:
            self.level -= 1.3 * self.fill_rate + self.noise(0.01)
            if self.level <= 10.0:
                self.filling = True
                self.fills += 1
                self.batch = self._batch_id()
        self.temp_sp = self.walk(self.temp_sp, 55.0, 0.001, 0.02)
        self.temp += (self.temp_sp - self.temp) / 60.0
        level = min(100.0, max(0.0, self.level + self.noise(0.03)))
        alarms = (level < 5) | (level < 15) << 1 | (level > 85) << 2 | (level > 95) << 3
        return [
            (_q(level, 1), GOOD),
            (f32(_q(self.temp + self.noise(0.04), 1)), GOOD),
            (_q(0.2 + 0.004 * level + self.noise(0.003), 2), GOOD),
            (self.filling, GOOD),
            (not self.filling, GOOD),
            (self.temp > 30.0 and level > 20.0, GOOD),
            (self.batch, GOOD),
            (int(alarms), GOOD),
            (self.fills, GOOD),
        ]


class FlowMeter(Unit):
    kind = "FT"

    def __init__(self, area: int, number: int, seed: int, phase: int) -> None:
        super().__init__(area, number, seed, phase)
        self.tag("Flow", "Double", 500, "MQH", 0, 250, "volume flow")
        self.tag("Total", "Int64", 1000, "LTR", description="volume totaliser")
        self.tag("Density", "Float", 1000, "KMQ", 900, 1100, "density")
        self.tag("Temperature", "Float", 1000, "CEL", 0, 100, "medium temperature")
        self.tag("Diagnostics", "UInt16", description="NAMUR NE107 status, 0 = ok")
        r = self.rng
        self.flow_sp = 40.0 + 120.0 * r.random()
        self.flow = self.flow_sp
        self.total_l = float(r.randrange(10_000_000, 900_000_000))
        self.density = 990.0 + 20.0 * r.random()
        self.temp = 15.0 + 20.0 * r.random()

    def step(self, tick: int) -> list[Reading]:
        self.flow_sp = self.walk(self.flow_sp, 100.0, 0.001, 0.15)
        self.flow += 0.2 * (self.flow_sp - self.flow)
        flow = max(0.0, self.flow + self.noise(0.03))
        self.total_l += flow * 1000.0 / 3600.0 * (TICK_MS / 1000.0)
        self.density = self.walk(self.density, 1000.0, 0.002, 0.02)
        self.temp = self.walk(self.temp, 22.0, 0.001, 0.01)
        return [
            (_q(flow, 2), GOOD),
            (int(self.total_l), GOOD),
            (f32(_q(self.density + self.noise(0.03), 1)), GOOD),
            (f32(_q(self.temp + self.noise(0.03), 1)), GOOD),
            (0, GOOD),
        ]


class TypeUnit(Unit):
    """One tag of every data type tidegate carries, walking through edge
    values (extremes, zero, NaN and infinities for floats, empty and
    non-ASCII text) so a client's decoding is tested end to end."""

    kind = "Types"
    CASES: dict[str, list[Any]] = {
        "Boolean": [True, False],
        "SByte": [-128, 127, 0, -1],
        "Byte": [0, 255, 1, 128],
        "Int16": [-32768, 32767, 0, -2],
        "UInt16": [0, 65535, 1, 40000],
        "Int32": [-2**31, 2**31 - 1, 0, -7],
        "UInt32": [0, 2**32 - 1, 1, 3_000_000_000],
        "Int64": [-2**63, 2**63 - 1, 0, -9],
        "UInt64": [0, 2**64 - 1, 1, 2**63 + 5],
        "Float": [f32(1.5), f32(-3.25e38), float("inf"), float("nan"), 0.0, float("-inf")],
        "Double": [1e308, -2.5e-308, float("nan"), float("inf"), 0.0, -1.0],
        "String": ["", "Grüße 東京", "a" * 300, "x"],
        "DateTime": [1_700_000_000_000_000_000, 0, 946_684_800_123_456_000, 4_102_444_800_000_000_000],
    }

    def __init__(self, area: int, number: int, seed: int, phase: int) -> None:
        super().__init__(area, number, seed, phase)
        self.prefix = "Plant.Lab.Types"
        for dtype in self.CASES:
            self.tag(dtype, dtype, 500, description=f"every {dtype} edge value in turn")
        self.k = 0

    def step(self, tick: int) -> list[Reading]:
        self.k = tick
        return [(cases[tick % len(cases)], GOOD) for cases in self.CASES.values()]


@dataclass(frozen=True)
class Episode:
    """A deterministic status episode: in ticks [start, end) of every cycle the
    tag reports `status`; `freeze` keeps the last good value (else the value
    goes on moving; Bad values become null on the wire anyway)."""

    node: str
    start: int
    end: int
    status: int
    freeze: bool = True


EPISODE_CYCLE = 120  # ticks (one minute)
EPISODES = (
    Episode("Plant.Area2.Tank01.Temperature", 2, 10, UNCERTAIN_LAST_USABLE),
    Episode("Plant.Area3.Pump02.Vibration", 3, 9, BAD_SENSOR_FAILURE),
    Episode("Plant.Area1.FT01.Density", 4, 12, UNCERTAIN_NOT_ACCURATE, freeze=False),
    Episode("Plant.Area4.Tank02.Level", 40, 50, BAD_COMM_ERROR),
)


class PlantModel:
    """All units plus change detection. ``initial()`` then ``step()`` per tick."""

    AREAS = 4
    PUMPS = 4
    TANKS = 2
    METERS = 2

    def __init__(self, seed: int = 1, *, types: bool = False) -> None:
        self.seed = seed
        self.units: list[Unit] = []
        makers: list[tuple[Callable[[int, int, int, int], Unit], int]] = [
            (Pump, self.PUMPS), (Tank, self.TANKS), (FlowMeter, self.METERS)]
        for area in range(1, self.AREAS + 1):
            for maker, count in makers:
                for n in range(1, count + 1):
                    self.units.append(maker(area, n, seed, len(self.units) % 2))
        if types:  # optional, so the plant's own tags and values never move
            self.units.append(TypeUnit(0, 1, seed, 0))
        self.tags: list[SimTag] = [t for u in self.units for t in u.tags]
        self._offset: list[int] = []
        off = 0
        for u in self.units:
            self._offset.append(off)
            off += len(u.tags)
        index = {t.name: i for i, t in enumerate(self.tags)}
        self._episodes = [(index[e.node], e) for e in EPISODES]
        self.tick = 0
        self._last: list[Reading] = []
        self._begun = False

    def initial(self) -> list[tuple[int, Any, int]]:
        """(tag index, value, status) of every tag before the first tick."""
        if not self._last:
            readings: list[Reading] = []
            for u in self.units:
                readings.extend(u.step(0))
            self._last = readings
        return [(i, v, s) for i, (v, s) in enumerate(self._last)]

    def step(self) -> list[tuple[int, Any, int]]:
        """Advance one tick; the (tag index, value, status) that changed."""
        if not self._last:
            self.initial()
        self.tick += 1
        tick = self.tick
        fresh: list[Reading] = []
        new: dict[int, Reading] = {}
        for u, off in zip(self.units, self._offset):
            readings = u.step(tick)
            fresh.extend(readings)
            for j, due in enumerate(u.due(tick)):
                if due:
                    new[off + j] = readings[j]
        phase = tick % EPISODE_CYCLE
        for i, e in self._episodes:
            last_value, last_status = self._last[i]
            if e.start <= phase < e.end:
                if e.status & 0x80000000:
                    value = None  # a Bad DataValue carries no value (Part 4, 7.7.1)
                elif e.freeze:
                    value = last_value
                else:
                    value = new.get(i, (last_value, GOOD))[0]
                new[i] = (value, e.status)
            elif last_status != GOOD:
                new[i] = (fresh[i][0], GOOD)  # episode over: the live reading again
        changes: list[tuple[int, Any, int]] = []
        for i in sorted(new):
            v, s = new[i]
            lv, ls = self._last[i]
            if s != ls or not _same(v, lv):
                changes.append((i, v, s))
                self._last[i] = (v, s)
        return changes

    def current(self) -> list[tuple[Any, int]]:
        return list(self._last)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b)
