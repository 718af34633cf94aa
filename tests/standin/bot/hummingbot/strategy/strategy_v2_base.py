"""The stand-in's V2 strategy base, enough for a script written for the real one to run the same:
the config class takes the script config's fields, the strategy logs as
hummingbot.strategy.strategy_v2_base, and tick() calls on_tick() whenever its connectors are ready
(ready_check: the test bed says which exchanges are cut off, see the quickstart)."""

import logging
from collections.abc import Callable

from hummingbot.strategy.strategy_py_base import StrategyPyBase


class StrategyV2ConfigBase:
    def __init__(self, **fields):
        for key, value in fields.items():
            setattr(self, key, value)


class StrategyV2Base(StrategyPyBase):
    ready_check: Callable[[], bool] = staticmethod(lambda: True)

    def __init__(self, connectors: dict | None = None, config: StrategyV2ConfigBase | None = None):
        self.connectors = connectors or {}
        self.config = config

    @classmethod
    def logger(cls) -> logging.Logger:
        return logging.getLogger(__name__)

    @property
    def ready_to_trade(self) -> bool:
        return self.ready_check()

    def tick(self, timestamp: float):
        if not self.ready_to_trade:
            return
        self.on_tick()

    def on_tick(self):
        pass
