"""What the chat channels keep: where each incident's living message is (per chat target), and
how far each channel has read its updates, so a restart edits the same message and does not
hand the same button press to the operator twice."""

from __future__ import annotations

import time

from agent.state.file import StateFile

OFFSET_KEY = "chat-offset:"  # meta key prefix, then the channel's name


class ChatMessages:
    def __init__(self, file: StateFile) -> None:
        self._file = file

    def where(self, incident: str, target: str) -> tuple[str, str] | None:
        """(chat, message id) of the incident's living message at that target, if it has one."""
        row = self._file.conn().execute("SELECT chat, message FROM chat_messages WHERE incident = ? AND"
                                        " target = ?", (incident, target)).fetchone()
        return (row[0], row[1]) if row else None

    def put(self, incident: str, target: str, chat: str, message: str) -> None:
        self._file.conn().execute("INSERT OR REPLACE INTO chat_messages (incident, target, chat, message,"
                                  " updated) VALUES (?, ?, ?, ?, ?)",
                                  (incident, target, chat, message, time.time()))

    def count(self, target: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM chat_messages", ()
        if target is not None:
            sql, args = sql + " WHERE target = ?", (target,)
        return int(self._file.conn().execute(sql, args).fetchone()[0])

    def offset(self, channel: str) -> int:
        """The next update a channel asks for (Telegram's getUpdates offset); 0 when none read."""
        row = self._file.conn().execute("SELECT value FROM meta WHERE key = ?",
                                        (OFFSET_KEY + channel,)).fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            return 0

    def set_offset(self, channel: str, offset: int) -> None:
        self._file.conn().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                  (OFFSET_KEY + channel, str(offset)))
