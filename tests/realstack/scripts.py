"""Bot scripts the real-lane tests deploy (real and stand-in bots run them alike)."""

# The captured e2 script (shared real logs), a real V2 script: it raises from its third tick on.
RAISE_TICK = """\
import os
from typing import Dict

from hummingbot.connector.connector_base import ConnectorBase
from hummingbot.strategy.strategy_v2_base import StrategyV2Base, StrategyV2ConfigBase


class RaiseTickConfig(StrategyV2ConfigBase):
    script_file_name: str = os.path.basename(__file__)


class RaiseTick(StrategyV2Base):
    def __init__(self, connectors: Dict[str, ConnectorBase], config: RaiseTickConfig):
        super().__init__(connectors, config)
        self.ticks = 0

    def on_tick(self):
        self.ticks += 1
        self.logger().info(f"raise_tick: tick {self.ticks}")
        if self.ticks >= 3:
            raise ZeroDivisionError("raise_tick: boom in on_tick")
"""
