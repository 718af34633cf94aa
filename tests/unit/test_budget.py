"""The action budget counts fixes, not steps: one attempt of an incident is one unit, so
a rule with several actions is not cut off after budget / steps fixes; the breaker still
trips at the budget."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.actions.base import ActionContext
from agent.hummingbot_api import HummingbotAPI
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.remedy.engine import Remedy
from agent.state import State

RULE = """\
id: three-steps
description: a fix in three steps
severity: warning
match:
  - logger: services.x
    level: ERROR
    message: '^broken (?P<thing>[a-z0-9]+)$'
captures:
  thing: {type: name}
incident: {key: "{thing}", cooldown: 60}
actions:
  - {action: http_request, params: {path: /one}}
  - {action: http_request, params: {path: /two}}
  - {action: http_request, params: {path: /three}}
notify: {title: "broken {thing}", text: "a thing broke"}
"""


@pytest.fixture
def api():
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_budget_counts_attempts_not_actions(tmp_path, api):
    url, hits = api
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "three-steps.yml").write_text(RULE)
    loaded = load_rules(tmp_path / "rules")
    assert not loaded.errors, loaded.errors
    rules = {r.id: r for r in loaded.rules}
    ctx = ActionContext(docker=None, api=HummingbotAPI(url, "admin", "admin"))
    remedy = Remedy(State(tmp_path / "s.db"), lambda: rules, lambda: ctx, budget=4)
    matcher = Matcher(loaded.rules)
    lines = [f"2026-11-29 01:49:32,002 - services.x - ERROR - broken thing{i}" for i in range(6)]
    incidents = [remedy.submit(matcher.match(e)) for e in replay_lines(lines, "c")]
    for inc in incidents:
        remedy.attempt(remedy.store.incidents.get(inc.id))
    states = [remedy.store.incidents.get(i.id).state for i in incidents]
    assert states == ["resolved"] * 4 + ["gave-up"] * 2, states
    assert len(hits) == 4 * 3
    detail = remedy.store.incidents.get(incidents[4].id).detail
    assert "budget exhausted (4 fix attempts in the last hour, limit 4)" in detail
