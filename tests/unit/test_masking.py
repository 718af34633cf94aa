"""Canaries through the real paths: the agent's own login in HTTP Basic's form, a wallet's words
and `password is X` forms, and hummingbot-api's URL with a password: masked in the agent's log,
the state file's unknown table, `hb-medic unknown`, /healthz's body, drafts and digests."""

from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys

from agent import logs
from agent.ingest.replay import replay_lines
from agent.notify.render import text
from agent.notify.unknown import digest_message
from agent.redact import Redactor, shown_url
from agent.settings import Settings
from agent.state import State
from agent.unknown.suggest import draft, from_log
from agent.unknown.tracker import UnknownTracker

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "Canary-Pw-7731x"  # base64 of "medic:<it>" has neither padding nor + or /
BASIC = base64.b64encode(f"medic:{PASSWORD}".encode()).decode()
PHRASE = "abandon ability able about above absent"
TS = "2026-11-29 07:00:0{},000 - services.x - ERROR - "
LINES = [TS.format(0) + f"request failed, headers: [('authorization', 'Basic {BASIC}')]",
         TS.format(1) + f"token {BASIC} refused",
         TS.format(2) + f"wallet_secret_phrase: {PHRASE}",
         TS.format(3) + f"import failed: seed={PHRASE}",
         TS.format(4) + "the password is Hunter2Canary now",
         TS.format(5) + "mnemonic is 'zoo Canary3 zoo'",
         TS.format(6) + "login password: Canary4Pw refused"]
CANARIES = (PASSWORD, BASIC, BASIC[:-4], "ability able", "Hunter2Canary", "Canary3", "Canary4Pw")


def settings(tmp_path) -> Settings:
    return Settings(state_db=tmp_path / "state.db", hummingbot_username="medic", hummingbot_password=PASSWORD,
                    hummingbot_url=f"http://medic:{PASSWORD}@127.0.0.1:9")


def assert_clean(where: str, shown: str) -> None:
    for canary in CANARIES:
        assert canary not in shown, (where, canary, shown[:2000])


def test_canaries_are_masked_in_the_log_the_state_file_unknown_drafts_and_digests(tmp_path):
    s = settings(tmp_path)
    assert BASIC.isalnum()
    redactor = Redactor([x for c in s.stack_list() for x in c.secrets()], public=["medic"])
    out = io.StringIO()
    logs.setup("text", redactor, stream=out)
    try:
        store = State(s.state_db)
        tracker = UnknownTracker(store, redactor)
        for event in replay_lines(LINES, "hummingbot-api"):
            assert tracker.observe(event)
        tracker.flush()
        entries = store.unknown.most_frequent()
        assert len(entries) == len(LINES)
        logging.getLogger("agent").info("login header was Authorization: Basic %s", BASIC)
        digest = text(digest_message(entries, 0.0, 1e10, redactor))[1]
        store.close()
    finally:
        logging.getLogger().handlers.clear()
    assert_clean("agent log", out.getvalue())
    assert "wallet_secret_phrase: ***" in out.getvalue() and "password is ***" in out.getvalue()
    assert_clean("state file", b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")).decode("latin-1"))
    assert_clean("digest", digest)
    env = {**os.environ, "MEDIC_STATE_DB": str(s.state_db)}
    listed = subprocess.run([sys.executable, "-m", "agent", "unknown", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert_clean("hb-medic unknown", listed.stdout)
    # A draft from a saved log, read with no secret known: the forms are masked all the same.
    saved = tmp_path / "saved.log"
    saved.write_text("".join(f"{line}\n{line}\n" for line in LINES[2:]))
    for fam in from_log(str(saved), "hummingbot-api", None):
        d = draft(fam, [], "canary", None)
        for canary in CANARIES[3:]:
            assert canary not in d.yaml_text + d.samples_text, (canary, d.yaml_text, d.samples_text)


def test_the_health_body_and_doctor_show_the_url_without_its_password(tmp_path):
    from agent.doctor import _api
    from agent.service import Service

    s = settings(tmp_path)
    assert shown_url(s.hummingbot_url) == "http://medic:***@127.0.0.1:9"
    service = Service(s.model_copy(update={"bots": "off"}), listen=False)
    try:
        service.main.api_watch._look()  # nothing answers at 127.0.0.1:9: its problem names the URL
        ok, body = service.report()
    finally:
        service.store.close()
    shown = repr(body)
    assert not ok and "http://medic:***@127.0.0.1:9" in shown
    assert_clean("/healthz", shown)
    assert_clean("summary", "\n".join(service.main.summary()))
    said = " ".join(f.what + f.fix for f in _api("", s.stack_list()[0]))
    assert "medic:***@" in said
    assert_clean("doctor", said)
