"""The scenarios: each a module with `run(quick) -> dict` and its target; limits in seconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Scenario:
    module: str
    quick_limit: float
    full_limit: float
    full_only: bool = False
    function: str = "run"

    @property
    def target(self) -> str:
        return import_module(f"faults.scenarios.{self.module}").TARGET

    @property
    def run(self) -> Callable[[bool], dict]:
        return getattr(import_module(f"faults.scenarios.{self.module}"), self.function)

    def limit(self, quick: bool) -> float:
        return self.quick_limit if quick else self.full_limit


# In the order they start: the longest first, so a run side by side ends soonest. A limit bounds
# a run that hangs; it is no target: the quick run shares two cores with the test suite, so its
# limits leave room for a loaded machine (each takes about a minute when alone).
SCENARIOS: dict[str, Scenario] = {
    "engine-restart": Scenario("engine_restart", 300, 600),
    "kill-storm": Scenario("kill_storm", 300, 900),
    "receiver-outage": Scenario("receiver_outage", 300, 600),
    "receiver-429": Scenario("receiver_429", 300, 600),
    "chat-outage": Scenario("chat_outage", 300, 900),
    "api-outage-60s": Scenario("api_outage", 300, 400),
    "api-outage-10min": Scenario("api_outage", 0, 1000, full_only=True, function="run_long"),
    "kill-after-fix": Scenario("kill_after_fix", 300, 900),
    "approval-kill": Scenario("approval_kill", 300, 600),
    "stop-clean": Scenario("stop_clean", 300, 600),
    "restart-messages": Scenario("restart_messages", 300, 600),
    "hostile-bytes": Scenario("hostile_bytes", 300, 600),
    "full-disk": Scenario("full_disk", 300, 400),
    "state-file": Scenario("state_file", 300, 400),
    "fuzz": Scenario("fuzz", 300, 900),
    "headerless-after-failure": Scenario("headerless_after", 300, 400),
    "bots-folder": Scenario("bots_folder", 300, 400),
    "bot-log-tricks": Scenario("bot_log_tricks", 300, 400),
    "preflight-kill": Scenario("preflight_kill", 300, 400),
    "notty-kill": Scenario("notty_kill", 300, 600),
}
