"""Account (credentials profile) routes. HTTPException details are not logged."""

from __future__ import annotations

import re

from fastapi import APIRouter, Body, Depends, HTTPException

import config
from security import auth
from services import accounts_service as accounts

router = APIRouter(prefix="/accounts", dependencies=[Depends(auth)])
_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def _safe(label: str, name: str) -> None:
    if not config.LEGACY and not _SAFE.match(name):
        raise HTTPException(
            status_code=400,
            detail=f"Invalid {label}: '{name}'. Only letters, numbers, underscores and hyphens are allowed.",
        )


@router.get("/")
async def list_accounts():
    return accounts.list_accounts()


@router.get("/{account_name}/credentials")
async def list_account_credentials(account_name: str):
    try:
        return accounts.list_credentials(account_name)
    except FileNotFoundError as e:
        raise HTTPException(status_code=404, detail=str(e)) from e


@router.post("/add-account", status_code=201)
async def add_account(account_name: str):
    _safe("account name", account_name)
    try:
        accounts.add_account(account_name)
    except FileExistsError as e:
        raise HTTPException(status_code=400, detail=str(e)) from e
    return {"message": "Account added successfully."}


@router.post("/delete-account")
async def delete_account(account_name: str):
    _safe("account name", account_name)
    if account_name == "master_account":
        raise HTTPException(status_code=400, detail="Cannot delete master account.")
    try:
        accounts.delete_account(account_name)
    except FileNotFoundError as e:
        raise HTTPException(status_code=404, detail=str(e)) from e
    return {"message": "Account deleted successfully."}


@router.post("/add-credential/{account_name}/{connector_name}", status_code=201)
async def add_credential(account_name: str, connector_name: str, credentials: dict = Body(...)):
    _safe("account name", account_name)
    _safe("connector name", connector_name)
    try:
        accounts.add_credentials(account_name, connector_name, credentials)
    except Exception as e:
        raise HTTPException(status_code=400, detail=str(e)) from e
    return {"message": "Connector credentials added successfully."}
