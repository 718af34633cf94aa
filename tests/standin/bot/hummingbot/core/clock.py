"""The stand-in's clock: ticks its iterators every tick_size seconds; an exception of one is the
real clock's ERROR record with its traceback, caught in (compiled) Clock.run_til."""

import logging
import time

from hummingbot.core.standin_compiled import compiled


class Clock:
    def __init__(self, tick_size: float = 1.0):
        self.tick_size = tick_size
        self.child_iterators = []

    @classmethod
    def logger(cls) -> logging.Logger:
        return logging.getLogger(__name__)

    def add_iterator(self, iterator) -> None:
        self.child_iterators.append(iterator)

    def run_til(self) -> None:
        while True:
            time.sleep(self.tick_size)
            now = time.time()
            for child_iterator in self.child_iterators:
                try:
                    child_iterator.c_tick(now)
                except Exception:
                    self.logger().error("Unexpected error running clock tick.", exc_info=True)


Clock.run_til = compiled(Clock.run_til, "hummingbot/core/clock.pyx", "hummingbot.core.clock.Clock.run_til")
