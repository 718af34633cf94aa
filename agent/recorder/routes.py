"""The routes each generation of hummingbot-api has, so the recorder can tell a client of another
release (a 404 on a route another generation has) from an ordinary 404.

Read from the sources: `backend-api` is hummingbot-api's predecessor (routes without a prefix, the
ones older dashboards call: `add-connector-keys`, `create-hummingbot-instance`, `add-script-config`,
`run-backtesting`); `legacy` is hummingbot-api of 2026-01 (fdf35f5) and `current` of 2026-06
(ee7ce5c). Only the routes that are not in every hummingbot-api generation are listed by
generation; the routes both have are listed once, as SHARED: a 404 on a path one of them matches is
a handler's answer (an account that does not exist), never a mismatch.

What a match gives back is a template of this table, never the path the client sent: request paths
are the client's text, and only the table's words reach a record or a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

GENERATIONS = ("backend-api", "legacy", "current")

BACKEND_API = """
GET /accounts-state
GET /account-state-history
GET /available-connectors
GET /connector-config-map/{connector_name}
GET /all-connectors-config-map
GET /list-accounts
GET /list-credentials/{account_name}
POST /add-account
POST /delete-account
POST /delete-credential/{account_name}/{connector_name}
POST /add-connector-keys/{account_name}/{connector_name}
GET /is-docker-running
GET /available-images/{image_name}
GET /active-containers
GET /exited-containers
POST /clean-exited-containers
POST /remove-container/{container_name}
POST /stop-container/{container_name}
POST /start-container/{container_name}
POST /create-hummingbot-instance
POST /pull-image/
GET /list-scripts
GET /list-scripts-configs
GET /script-config/{script_name}
GET /list-controllers
GET /list-controllers-configs
GET /controller-config/{controller_name}
GET /all-controller-configs
GET /all-controller-configs/bot/{bot_name}
POST /update-controller-config/bot/{bot_name}/{controller_id}
POST /add-script
POST /upload-script
POST /add-script-config
POST /upload-script-config
POST /add-controller-config
POST /upload-controller-config
POST /delete-controller-config
POST /run-backtesting
GET /get-active-bots-status
GET /get-bot-status/{bot_name}
GET /get-bot-history/{bot_name}
POST /start-bot
POST /stop-bot
POST /import-strategy
"""

LEGACY = """
DELETE /gateway/pools/{address}
POST /backtesting/run-backtesting
POST /gateway/pools
POST /gateway/wallets/create
POST /gateway/wallets/send
POST /gateway/wallets/show-private-key
POST /portfolio/accounts-distribution
"""

CURRENT = """
DELETE /archived-bots/{db_path:path}
DELETE /backtesting/tasks/{task_id}
DELETE /bot-orchestration/bot-runs/{bot_run_id}
DELETE /executors/positions/{connector_name}/{trading_pair}
DELETE /gateway/networks/{network_id}/pools/{pool_address}
GET /backtesting/tasks
GET /backtesting/tasks/{task_id}
GET /bot-orchestration/controller-performance-history
GET /bot-orchestration/controller-performance-latest
GET /executors/performance
GET /executors/positions/summary
GET /executors/positions/{connector_name}/{trading_pair}
GET /executors/summary
GET /executors/types/available
GET /executors/types/{executor_type}/config
GET /executors/{executor_id}
GET /executors/{executor_id}/logs
GET /gateway/apiKeys
GET /gateway/networks/{network_id}/pools
GET /market-data/order-book/diagnostics/{connector_name}
GET /portfolio/accounts-distribution
GET /rate-oracle/config
GET /rate-oracle/prices
GET /rate-oracle/rate-async/{trading_pair}
GET /rate-oracle/rate/{trading_pair}
GET /rate-oracle/sources
GET /storage/
GET /system/resources
POST /accounts/gateway/wallet/set-default
POST /backtesting/run
POST /backtesting/tasks
POST /executors/
POST /executors/search
POST /executors/{executor_id}/stop
POST /gateway/apiKeys
POST /gateway/clmm/add
POST /gateway/clmm/remove
POST /gateway/networks/{network_id}/pools
POST /gateway/networks/{network_id}/pools/save/{pool_address}
POST /gateway/networks/{network_id}/tokens/save/{token_address}
POST /market-data/order-book/restart/{connector_name}
POST /market-data/trading-pair/add
POST /market-data/trading-pair/remove
POST /rate-oracle/rates
PUT /rate-oracle/config
"""

# Path templates every hummingbot-api generation has (for some method) that a path of the lists above
# could also match: a 404 there is a handler's own answer, and another method is answered 405.
SHARED = """
/accounts/
/accounts/{account_name}/credentials
/accounts/add-account
/accounts/add-credential/{account_name}/{connector_name}
/accounts/delete-account
/accounts/delete-credential/{account_name}/{connector_name}
/accounts/gateway/{chain}/{address}
/archived-bots/{db_path:path}/{what}
/bot-orchestration/{bot_name}/status
/bot-orchestration/{bot_name}/history
/bot-orchestration/bot-runs/{bot_run_id}
/bot-orchestration/stop-and-archive-bot/{bot_name}
/connectors/{connector_name}/{what}
/controllers/{controller_type}/{controller_name}
/controllers/configs/{config_name}
/docker/{what}/{container_name}
/gateway/networks/{network_id}
/gateway/networks/{network_id}/tokens/{token_address}
/gateway/connectors/{connector_name}
/gateway/swaps/{transaction_hash}/status
/gateway/clmm/positions/{position_address}/events
/scripts/{script_name}
/scripts/configs/{config_name}
/trading/{account_name}/{connector_name}/{what}
"""

# A client of another release sends a few hundred of these at most: a record per template per
# this many seconds is enough evidence, and the table bounds what can be kept.
KEEP_EVERY = 600.0


@dataclass(frozen=True)
class Missing:
    """A request for a route this hummingbot-api lacks: the table's words only."""

    method: str
    template: str
    generations: tuple[str, ...]

    @property
    def newer(self) -> bool:
        """Only the current generation has it: this hummingbot-api is older than its client."""
        return self.generations == ("current",)


def _pattern(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(:path)?\}", template):
        out.append(re.escape(template[pos:m.start()]))
        out.append(".+" if m[2] else "[^/]+")
        pos = m.end()
    out.append(re.escape(template[pos:].rstrip("/")))
    return re.compile("^" + "".join(out) + "/?$")


@cache
def _tables() -> tuple[list[tuple[str, str, re.Pattern[str], tuple[str, ...]]], list[re.Pattern[str]]]:
    owners: dict[tuple[str, str], list[str]] = {}
    for gen, text in zip(GENERATIONS, (BACKEND_API, LEGACY, CURRENT), strict=True):
        for line in text.split("\n"):
            if line.strip():
                method, template = line.split()
                owners.setdefault((method, template), []).append(gen)
    routes = [(m, t, _pattern(t), tuple(g)) for (m, t), g in owners.items()]
    shared = [_pattern(t) for t in SHARED.split() if t]
    return routes, shared


def missing_route(method: str, path: str) -> Missing | None:
    """The route of another generation that `method path` calls, when one does and no route every
    generation has could have answered it; None otherwise. The most literal template wins
    (`/executors/summary` over `/executors/{executor_id}`)."""
    routes, shared = _tables()
    if not path.startswith("/") or len(path) > 2048 or any(p.match(path) for p in shared):
        return None
    found = [(t.count("{"), -len(t), t, g) for m, t, p, g in routes if m == method and p.match(path)]
    if not found:
        return None
    _, _, template, generations = min(found)
    return Missing(method, template, generations)


def _plain(template: str) -> str:
    """A template as OpenAPI writes it: FastAPI drops a converter (`{db_path:path}` → `{db_path}`)."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", template)


def generation_of(served: Iterable[tuple[str, str]]) -> str | None:
    """The generation of a hummingbot-api that serves these (method, path template) pairs (the
    paths of its /openapi.json): the one generation whose own routes (those no other has) are
    among them while no other's are; None when none is (not hummingbot-api, or a build the table
    does not know) or several are (a build between two generations: no guess)."""
    routes, _ = _tables()
    given = {(method.upper(), _plain(template)) for method, template in served}
    owners = {g[0] for m, t, _, g in routes if len(g) == 1 and (m, _plain(t)) in given}
    return owners.pop() if len(owners) == 1 else None


def known(method: str, template: str) -> Missing | None:
    """A template of the table as it was stored (a record read back is checked against it)."""
    routes, _ = _tables()
    for m, t, _, g in routes:
        if m == method and t == template:
            return Missing(m, t, g)
    return None
