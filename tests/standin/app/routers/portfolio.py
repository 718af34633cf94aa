"""The portfolio's accounts distribution, the one route whose method tells the generations apart
(legacy: POST with a filter body; current: GET), as hummingbot-api's /openapi.json lists it. The
stand-in holds no balances, so it answers as the real program does with none: an empty
distribution."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

import config
from security import auth

router = APIRouter(prefix="/portfolio", dependencies=[Depends(auth)])
EMPTY = {"total_portfolio_value": 0, "account_count": 0, "distribution": []}


class AccountsDistributionFilterRequest(BaseModel):
    account_names: list[str] | None = None
    connector_names: list[str] | None = None


if config.LEGACY:

    @router.post("/accounts-distribution")
    async def get_accounts_distribution(filter_request: AccountsDistributionFilterRequest):
        if not filter_request.account_names:
            return EMPTY
        return {"accounts": {}, "total_value": 0, "account_count": 0}  # none of them has a balance

else:

    @router.get("/accounts-distribution")
    async def get_accounts_distribution():
        return EMPTY
