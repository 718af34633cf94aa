"""The recorder's table of hummingbot-api's generations: which 404s mean a client of another release."""

from __future__ import annotations

import pytest

from agent.recorder.routes import missing_route


@pytest.mark.parametrize(("method", "path", "template", "generations"), [
    ("POST", "/backtesting/run", "/backtesting/run", ("current",)),
    ("GET", "/executors/summary", "/executors/summary", ("current",)),  # the literal beats {executor_id}
    ("GET", "/executors/abc", "/executors/{executor_id}", ("current",)),
    ("GET", "/storage", "/storage/", ("current",)),
    ("POST", "/backtesting/run-backtesting", "/backtesting/run-backtesting", ("legacy",)),
    ("POST", "/add-connector-keys/acct/binance", "/add-connector-keys/{account_name}/{connector_name}",
     ("backend-api",)),
    ("POST", "/create-hummingbot-instance", "/create-hummingbot-instance", ("backend-api",)),
])
def test_a_route_of_another_generation_is_named_by_its_template(method, path, template, generations):
    found = missing_route(method, path)
    assert found is not None and (found.template, found.generations) == (template, generations)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/accounts/nobody/credentials"),  # every generation has it: a handler's 404
    ("POST", "/accounts/gateway/wallet/set-default"),  # matches a path both have: 405 there, not 404
    ("GET", "/backtesting/run"),  # another method
    ("GET", "/no/such/route"), ("POST", "/add-connector-keys"), ("GET", "relative"),
    ("GET", "/" + "a" * 3000),
])
def test_any_other_404_is_no_mismatch(method, path):
    assert missing_route(method, path) is None
