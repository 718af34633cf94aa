"""Incident decisions that need no engine: stale events, the budget, cooldown, dedup."""

from __future__ import annotations

import itertools
import time

import pytest

from agent.actions.base import ActionContext
from agent.actions.deploys import check_body
from agent.events import BOT, CONSOLE, Origin
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.remedy.decisions import MAX_INTERRUPTED
from agent.remedy.engine import Remedy
from agent.remedy.intent import base_name, from_bots_folder
from agent.state import State
from tests.stack import REPO

RULES = {r.id: r for r in load_rules(REPO / "rules").rules}
LINE = ("{ts} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory: "
        "'bots/credentials/{profile}'")


def no_context() -> ActionContext:
    raise AssertionError("no action may run in these tests")


_LINE_NO = itertools.count(1)


def result(profile="client_sharp", stamp=None):
    """A new failure line each call (its own engine timestamp: a repeat, not a replay)."""
    ts = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime(stamp or time.time()))
    when = time.gmtime(stamp or time.time())
    docker_ts = time.strftime("%Y-%m-%dT%H:%M:%S", when) + f".{next(_LINE_NO):09d}Z"
    (event,) = list(replay_lines([f"{docker_ts} " + LINE.format(ts=ts, profile=profile)], "hummingbot-api"))
    return Matcher(list(RULES.values())).match(event)


@pytest.fixture
def remedy(tmp_path):
    return Remedy(State(tmp_path / "s.db"), lambda: RULES, no_context, budget=2, stale_after=60)


def test_same_failure_is_one_incident_counted(remedy):
    first = remedy.submit(result())
    for _ in range(9):
        assert remedy.submit(result()).id == first.id
    assert remedy.store.incidents.get(first.id).events == 10
    assert remedy.pool.queued() == 1  # one attempt queued, not ten


def test_stale_event_reported_not_acted_on(remedy):
    inc = remedy.submit(result(stamp=time.time() - 3600))
    assert inc.state == "stale" and "reported, not acted on" in inc.detail
    assert remedy.pool.queued() == 0


def test_budget_exhausted_gives_up_without_acting(remedy):
    inc = remedy.submit(result())
    for n in range(2):
        remedy.store.incidents.audit(f"other{n}", "attempt", "attempt 1 of 3")
    remedy.attempt(remedy.store.incidents.get(inc.id))  # would call no_context() if it acted
    inc = remedy.store.incidents.get(inc.id)
    assert inc.state == "gave-up" and "budget exhausted (2 fix attempts in the last hour" in inc.detail


def test_cooldown_after_resolution(remedy):
    inc = remedy.submit(result())
    inc = remedy.store.incidents.get(inc.id)
    inc.state, inc.closed = "resolved", time.time()
    remedy.store.incidents.save(inc)
    again = remedy.submit(result())
    assert again.id == inc.id
    trail = remedy.store.incidents.audit_trail(inc.id)
    assert [a["name"] for a in trail][-1] == "event during cooldown: no action"


def test_refused_and_observe(tmp_path):
    r = Remedy(State(tmp_path / "o.db"), lambda: RULES, no_context, mode="observe")
    assert r.submit(result(profile="x;reboot")).state == "refused"
    inc = r.submit(result())
    assert inc.state == "observed"
    assert inc.detail == ("would have run: ensure_account(profile='client_sharp') -> "
                          "provision_credentials(profile='client_sharp') -> retry_deploy")


def test_restart_resumes_interrupted_attempts(tmp_path):
    store = State(tmp_path / "r.db")
    r = Remedy(store, lambda: RULES, no_context)
    inc = r.submit(result())
    inc = store.incidents.get(inc.id)
    inc.state, inc.attempts = "acting", 1
    store.incidents.save(inc)
    store.incidents.audit(inc.id, "attempt", "attempt 1 of 3")
    assert store.incidents.attempts_since(0) == 1
    Remedy(store, lambda: RULES, no_context).recover()
    again = store.incidents.get(inc.id)
    # The cut attempt is not counted, nor budgeted: a kill of the agent is not the fix failing.
    assert again.state == "failed" and again.attempts == 0 and again.next_attempt <= time.time()
    assert store.incidents.attempts_since(0) == 0
    for _ in range(MAX_INTERRUPTED - 1):  # but a fix that keeps taking the agent down does not loop
        again = store.incidents.get(inc.id)
        again.state, again.attempts = "acting", 1
        store.incidents.save(again)
        Remedy(store, lambda: RULES, no_context).recover()
    final = store.incidents.get(inc.id)
    assert final.state == "gave-up" and f"the {MAX_INTERRUPTED}th time" in final.detail


def test_deploy_body_checks():
    ok = {"instance_name": "a", "credentials_profile": "b"}
    assert check_body("deploy-v2-script", ok) is None
    assert "instance_name" in check_body("deploy-v2-script", {**ok, "instance_name": "a/b"})
    assert "unknown fields" in check_body("deploy-v2-script", {**ok, "command": "rm"})
    assert base_name("sharp-bot-20261129-014932") == "sharp-bot" and base_name("sharp-bot") == "sharp-bot"


def test_controllers_intent_from_the_bots_folder(tmp_path):
    bots = tmp_path / "bots"
    (bots / "instances" / "ctl-20261129-010101" / "data").mkdir(parents=True)
    (bots / "conf" / "scripts").mkdir(parents=True)
    (bots / "conf" / "scripts" / "ctl-20261129-010101.yml").write_text(
        "script_file_name: v2_with_controllers.py\ncontrollers_config: [pmm_a.yml]\n"
        "max_global_drawdown_quote: 50\n")
    found = from_bots_folder(bots, profile="client_sharp", at=time.time())
    assert found["route"] == "deploy-v2-controllers"
    assert found["body"] == {"instance_name": "ctl", "credentials_profile": "client_sharp",
                             "controllers_config": ["pmm_a"], "max_global_drawdown_quote": 50}


def test_retry_deploy_by_hand_only_for_waiting_incidents(remedy):
    from agent.actions.base import ActionError

    inc = remedy.store.incidents.get(remedy.submit(result()).id)
    with pytest.raises(ActionError, match="finishes only waiting incidents"):
        remedy.finish(inc, None, {"instance_name": "a", "credentials_profile": "b"})


def test_broken_credentials_file_never_quoted(tmp_path):
    from agent.actions import registry
    from agent.actions.base import ActionError

    canary = "canary-secret-66123"
    (tmp_path / "client_sharp").mkdir()
    (tmp_path / "client_sharp" / "bitmart.yml").write_text(f'bitmart_secret_key: "{canary}\nbad: [\n')
    spec = registry()["provision_credentials"]
    ctx = ActionContext(docker=None, api=None, credentials_dir=tmp_path)
    with pytest.raises(ActionError) as err:
        spec.func(spec.params.model_validate({"profile": "client_sharp"}), ctx)
    assert canary not in str(err.value) and "not readable JSON/YAML" in str(err.value)


def test_observe_only_rule_repeating_is_one_incident_within_its_cooldown(tmp_path):
    """An observed incident closes at once; the same error 2 s later is counted, not observed
    (and told) again, until the rule's cooldown has passed."""
    rules = {rid: r.model_copy(update={"observe_only": True}) for rid, r in RULES.items()}
    steps = []
    remedy = Remedy(State(tmp_path / "s.db"), lambda: rules, no_context,
                    notify=lambda inc, step, text: steps.append(step))
    observing = Matcher(list(rules.values()))

    def observed():
        return observing.match(result().event)

    first = remedy.submit(observed())
    for _ in range(5):
        assert remedy.submit(observed()).id == first.id
    inc = remedy.store.incidents.get(first.id)
    assert inc.state == "observed" and inc.events == 6
    assert steps == ["detected", "observed"]


def test_a_replayed_event_joins_its_incident_whatever_the_cooldown(tmp_path):
    """A kill right after a fix, a restart long after the cooldown: the failure line, read again
    from before the checkpoint, is the same event and opens no second incident."""
    store = State(tmp_path / "k.db")
    line = "2026-11-29T01:49:32.002000001Z " + LINE.format(ts="2026-11-29 01:49:32,002", profile="client_k")
    matcher = Matcher(list(RULES.values()))

    def read():  # the same line as the engine gives it again
        (event,) = list(replay_lines([line], "hummingbot-api"))
        return matcher.match(event)

    first = Remedy(store, lambda: RULES, no_context, stale_after=10**10).submit(read())
    inc = store.incidents.get(first.id)
    inc.state, inc.closed = "resolved", time.time() - 3600  # fixed an hour ago: its cooldown is over
    store.incidents.save(inc)
    restarted = Remedy(store, lambda: RULES, no_context, stale_after=10**10)
    again = restarted.submit(read())
    assert again.id == first.id and restarted.pool.queued() == 0
    assert [i.id for i in store.incidents.recent()] == [first.id]
    assert store.incidents.get(first.id).events == 1
    assert store.incidents.audit_trail(first.id)[-1]["name"] == "replayed event already handled: no action"
    # A new line of the same failure, after the cooldown, is a new incident.
    assert restarted.submit(result(profile="client_k")).id != first.id


def _not_ready(matcher: Matcher, exchange: str, stamp: float):
    when = time.gmtime(stamp)
    docker_ts = time.strftime("%Y-%m-%dT%H:%M:%S", when) + f".{next(_LINE_NO):09d}Z"
    line = (f"{docker_ts} {time.strftime('%H:%M:%S', when)} - script_strategy_base - {exchange} is not"
            " ready. Please wait...")
    bot = "b_x-20261129-101010"
    (event,) = list(replay_lines([line], bot, origin=Origin(bot, CONSOLE, BOT)))
    return matcher.match(event)


def test_an_ongoing_condition_is_told_once_goes_on_below_its_threshold_and_ends_by_itself(tmp_path):
    steps: list[tuple[str, str]] = []
    rules = dict(RULES)
    rules["exchange-unreachable"] = RULES["exchange-unreachable"].model_copy(deep=True)
    rules["exchange-unreachable"].incident.quiet = 0.5
    remedy = Remedy(State(tmp_path / "s.db"), lambda: rules, no_context,
                    notify=lambda inc, step, text: steps.append((step, inc.id)))
    matcher = Matcher(list(rules.values()))
    now = time.time()
    first = [remedy.submit(_not_ready(matcher, "binance", now + i)) for i in range(3)]
    assert first[:2] == [None, None]  # below the threshold (3 within 180 s): nothing yet
    inc = first[2]
    assert inc.state == "ongoing" and inc.captures["exchange"] == "binance"
    assert steps == [("detected", inc.id)]
    # A line much later, alone below the threshold (a new window), still keeps it going.
    late = _not_ready(matcher, "Binance_paper_trade".lower(), now + 400)
    assert late.below_threshold
    remedy.submit(late)
    assert remedy.store.incidents.get(inc.id).events == 2
    remedy.intake.end_quiet(time.time())  # not yet: a line just came
    assert remedy.store.incidents.get(inc.id).state == "ongoing"
    time.sleep(0.6)
    remedy.intake.end_quiet(time.time())
    ended = remedy.store.incidents.get(inc.id)
    assert ended.state == "resolved" and ended.detail.startswith("no such line for 0.5 s: over after ")
    assert steps == [("detected", inc.id), ("ended", inc.id)]
    # Cut off again later: a new incident (cooldown 0), told again.
    again = [remedy.submit(_not_ready(matcher, "binance", now + 500 + i)) for i in range(3)]
    assert again[2] is not None and again[2].id != inc.id and again[2].state == "ongoing"
    assert steps[-1] == ("detected", again[2].id)


def test_the_remedy_is_a_component_with_its_dispatcher_and_workers(tmp_path):
    from agent.component import Component

    remedy = Remedy(State(tmp_path / "c.db"), lambda: RULES, no_context, stack="east")
    assert isinstance(remedy, Component) and remedy.health() == [] and list(remedy.metrics()) == []
    threads = remedy.threads()
    assert threads["remedy"].name == "remedy-east" and len(threads) == 1 + 8
    remedy.start()
    assert all(t.is_alive() for t in remedy.threads().values())
    remedy.stop(time.monotonic() + 5)
    assert not any(t.is_alive() for t in remedy.threads().values())
