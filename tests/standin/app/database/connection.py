"""Database start-up check over real TCP to the postgres stand-in.

A closed port gives a genuine ConnectionRefusedError; a refused login gives the
three-exception chain of asyncpg through SQLAlchemy (exception classes carry
those libraries' module names, so the printed types match the real ones), with
SQLAlchemy's `(Background on this error at: ...)` continuation line.
"""

from __future__ import annotations

import asyncio
import logging

import config

logger = logging.getLogger(__name__)

InvalidPasswordError = type("InvalidPasswordError", (Exception,), {"__module__": "asyncpg.exceptions"})
InvalidAuthorizationSpecificationError = type(
    "InvalidAuthorizationSpecificationError", (Exception,),
    {"__module__": "sqlalchemy.dialects.postgresql.asyncpg",
     "__qualname__": "AsyncAdapt_asyncpg_dbapi.InvalidAuthorizationSpecificationError"},
)
DBAPIError = type("DBAPIError", (Exception,), {"__module__": "sqlalchemy.exc"})
BACKGROUND = "(Background on this error at: https://sqlalche.me/e/21/dbapi)"


class AsyncDatabaseManager:
    async def _connect(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(config.DB_HOST, config.DB_PORT)
        except ConnectionRefusedError as exc:
            raise ConnectionRefusedError(
                exc.errno, f"Connect call failed ('{config.DB_HOST}', {config.DB_PORT})"
            ) from None
        try:
            writer.write(f"AUTH {config.DB_USER} {config.DB_PASSWORD}\n".encode())
            await writer.drain()
            answer = (await reader.readline()).decode().strip()
        finally:
            writer.close()
        if answer != "OK":
            raise InvalidPasswordError(answer.removeprefix("FAIL ") or "connection closed")

    async def _adapt_connect(self) -> None:
        try:
            await self._connect()
        except InvalidPasswordError as error:
            raise InvalidAuthorizationSpecificationError(f"{type(error)}: {error}") from error

    async def create_tables(self) -> None:
        try:
            try:
                await self._adapt_connect()
            except InvalidAuthorizationSpecificationError as e:
                cls = "sqlalchemy.dialects.postgresql.asyncpg.InvalidAuthorizationSpecificationError"
                raise DBAPIError(f"({cls}) {e}\n{BACKGROUND}") from e
        except Exception as e:
            logger.error(f"Failed to create database tables: {e}")
            raise
        logger.info("Database initialized")
