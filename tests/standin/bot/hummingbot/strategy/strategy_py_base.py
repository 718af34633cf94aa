"""The stand-in's StrategyPyBase: the clock calls its (compiled) c_tick, which calls tick()."""

from hummingbot.core.standin_compiled import compiled


class StrategyPyBase:
    def c_tick(self, timestamp: float) -> None:
        self.tick(timestamp)

    def tick(self, timestamp: float) -> None:
        pass


StrategyPyBase.c_tick = compiled(StrategyPyBase.c_tick, "hummingbot/strategy/strategy_py_base.pyx",
                                 "hummingbot.strategy.strategy_py_base.StrategyPyBase.c_tick")
