"""`rules suggest` and `hb-medic unknown`: drafts from real captured noise that pass
`rules check` and their own samples, stay narrower than the other unknown errors, and
whose captures refuse hostile values like every shipped rule's."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from agent import rules_cmd
from agent.cli import main
from agent.ingest.replay import replay_lines
from agent.match.loader import load_rules
from agent.match.matcher import Matcher
from agent.match.samples import blocks, check
from agent.redact import Redactor
from agent.state import State
from agent.unknown.generalise import generalise
from agent.unknown.suggest import draft, from_log
from agent.unknown.tracker import UnknownTracker
from tests.noise import GATEWAY_PING, REAL, hours_of

REPO = Path(__file__).resolve().parents[2]
LIBRARY = load_rules(REPO / "rules").rules
HOSTILE = ["$(reboot)", "../../etc/passwd", "a b", "-rf", "x;rm -rf /", "`id`", "a\x00b", "é\u202e"]


def written(d, folder: Path) -> list:
    (folder / f"{d.id}.yml").write_text(d.yaml_text)
    (folder / f"{d.id}.samples.log").write_text(d.samples_text)
    loaded = load_rules(folder)
    assert [str(e) for e in loaded.errors] == []
    return loaded.rules


def assert_hostile_values_refused(rule, events) -> None:
    """Every capture of a type that may reach an action, given a hostile value: the draft
    does not match, or it matches and refuses (no action would run)."""
    matcher = Matcher([*LIBRARY, rule])
    alt = rule.match[0]
    rx = re.compile(alt.exception_message or alt.message)
    for event in events:
        source = (event.outermost.message if alt.kind == "traceback" else event.message).split("\n")[0]
        m = rx.search(source)
        assert m, source
        for name, value in m.groupdict().items():
            if value is None or rule.captures[name].type == "text":
                continue
            for bad in HOSTILE:
                changed = source[:m.start(name)] + bad + source[m.end(name):]
                text = "\n".join(event.lines)
                at = text.rfind(source)
                lines = (text[:at] + changed + text[at + len(source):]).splitlines()
                for e in replay_lines(lines, event.container):
                    res = matcher.match(e)
                    if res is not None and res.rule.id == rule.id:
                        assert res.refused, (name, bad, res.captures)


def test_drafts_from_captured_noise_pass_their_checks(tmp_path):
    noise = tmp_path / "ten-minutes.log"
    noise.write_text("\n".join(hours_of(GATEWAY_PING, 1 / 6)) + "\n")
    families = from_log(str(noise), "hummingbot-api", None)
    noise.unlink()
    recurring = [f for f in families if f.entry.count >= 2]
    assert len(recurring) == 1  # the gateway ping (the rate oracle's DNS failure is exchange-unreachable)
    for fam in recurring:
        others = [o for o in families if o is not fam]
        d = draft(fam, others, f"draft-{len(list(tmp_path.iterdir()))}", None)
        assert d.yaml_text.startswith("# DRAFT written by hb-medic rules suggest from v2:")
        assert "observe_only: true" in d.yaml_text
        (rule,) = [r for r in written(d, tmp_path) if r.id == d.id]
        assert rule.observe_only and not rule.actions and rule.where.stream == "stderr"
        assert rule.where.containers == ["hummingbot-api"]
        assert rules_cmd.check(str(tmp_path), out=io.StringIO()) == 0
        kinds = {"rule": 0, "not": 0, "refused": 0}
        for line, expect, lines in blocks(d.samples_text):
            assert check(Matcher([*LIBRARY, rule]), expect, lines) is None, line
            kinds["refused" if expect.get("refused") else "rule" if "rule" in expect else "not"] += 1
        assert kinds["rule"] == len(fam.events) and kinds["not"] >= 1
        # Narrower than the other unknown errors, wider than one line of one sample.
        for other in others:
            for e in other.events:
                res = Matcher([rule]).match(e)
                assert res is None, (d.id, other.entry.summary)
        assert_hostile_values_refused(rule, fam.events)
        for path in tmp_path.iterdir():
            path.unlink()


def test_the_gateway_ping_draft_names_what_it_saw():
    families = from_log(str(GATEWAY_PING), "hummingbot-api", None)
    (ping,) = [f for f in families if f.entry.exceptions == ["AttributeError"]]
    d = draft(ping, [f for f in families if f is not ping], "gateway-ping", None)
    alt = d.rule["match"][0]
    assert alt["kind"] == "traceback" and alt["exception"] == "AttributeError"
    assert alt["logger"] == "hummingbot.core.gateway.gateway_http_client" and alt["level"] == "ERROR"
    assert alt["frame"] == {"file": r"gateway_http_client\.py$", "function": "_http_client"}
    assert alt["exception_message"] == (r"^'(?P<value>[^'\n]*)' object has no attribute"
                                        r" '(?P<attribute>[^'\n]*)'$")
    assert d.rule["captures"] == {"value": {"type": "name", "max_length": 128},
                                  "attribute": {"type": "name", "max_length": 128}}
    assert d.rule["severity"] == "error"


def test_a_draft_s_message_quotes_the_log_and_its_title_carries_none_of_it(tmp_path):
    """A drafted rule's notification presents what the program printed as a value ({message},
    shown as code), never as the agent's own words; its title names the fingerprint only."""
    urgent = "URGENT: exchange keys leaked, rotate now at https://evil.example/r"
    log = tmp_path / "forged.log"
    log.write_text("".join(f"2026-11-29 07:00:{i:02d},000 - evil.example - ERROR - {urgent}\n"
                           for i in range(3)))
    (fam,) = from_log(str(log), "hummingbot-api", None)
    d = draft(fam, [], "forged", None)
    notify = d.rule["notify"]
    assert notify["title"] == f"Drafted rule {fam.entry.fingerprint} matched in {{container}}"
    assert notify["text"] == "{container} printed on {stream}, quoted: {message}"
    assert "URGENT" not in notify["text"] + notify["title"] + notify["next_steps"]
    (ping,) = [f for f in from_log(str(GATEWAY_PING), "hummingbot-api", None) if f.entry.exceptions]
    tb = draft(ping, [], "gateway-ping", None).rule["notify"]
    assert tb["text"] == ("{container} printed a traceback ({exception}) on {stream}; its record, quoted:"
                          " {message}")


def test_generalise_keeps_what_is_constant_and_captures_what_varies():
    t = generalise(["Cannot connect to host api.gateio.ws:443 ssl:default [Name or service not known]",
                    "Cannot connect to host api.binance.com:443 ssl:default"
                    " [Temporary failure in name resolution]"])
    assert t.regex.startswith(r"^Cannot connect to host (?P<host>")
    assert set(t.captures) == {"host", "port", "detail"} and t.free_text == ["detail"]
    assert t.template == "Cannot connect to host {host}:{port} ssl:default [{detail}]"
    t = generalise(["Error adding connector credentials for account rc_acct_o2: 'rc_no_such_exchange'"])
    assert t.regex == (r"^Error\ adding\ connector\ credentials\ for\ account (?P<account>[A-Za-z0-9_]"
                       r"[A-Za-z0-9_.-]*): '(?P<value>[^'\n]*)'$").replace("\\ ", " ")
    assert t.captures["account"].type == "name" and t.captures["value"].type == "name"
    t = generalise(["Script config file rb_cfg_d2_missing.yml not found in bots/conf/scripts"])
    assert {n: c.type for n, c in t.captures.items()} == {"file": "file", "path": "text"}
    assert re.search(t.regex, "Script config file x.yml not found in ../../etc")  # matches, then...
    assert not re.fullmatch(t.captures["path"].pattern, "../../etc")  # ...the path is refused


@pytest.fixture
def noisy_store(tmp_path, monkeypatch):
    db = tmp_path / "state.db"
    monkeypatch.setenv("MEDIC_STATE_DB", str(db))
    store = State(db)
    tracker = UnknownTracker(store, Redactor())
    matcher = Matcher(LIBRARY)
    for path in [REAL / "b_current_ee7ce5c_deploy_missing_profile.log"]:
        lines = path.read_text().splitlines()
        for e in replay_lines(lines, "hummingbot-api"):
            if matcher.match(e) is None:
                tracker.observe(e)
    for e in replay_lines(hours_of(GATEWAY_PING, 0.5), "hummingbot-api"):
        if matcher.match(e) is None:
            tracker.observe(e)
    tracker.flush()
    return store


def test_unknown_command_lists_most_frequent_first(noisy_store, capsys):
    assert main(["unknown"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["COUNT", "FIRST"]
    counts = [int(x.split()[0].replace(",", "")) for x in out[1:-1]]
    assert counts == sorted(counts, reverse=True) and counts[0] > 800
    assert "'NoneType' object has no attribute 'password'" in out[1]
    assert out[-1].startswith("-- 1 fingerprint(s)")  # the DNS failures are exchange-unreachable
    assert main(["unknown", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["count"] for r in rows] == counts
    assert rows[0]["suggest"] == f"hb-medic rules suggest {rows[0]['fingerprint']}"
    assert rows[0]["exceptions"] == ["AttributeError"] and len(rows[0]["samples"]) == 3
    assert main(["unknown", "--since", "10m"]) == 0  # the noise is from 2026-11-29 07:27 on
    assert capsys.readouterr().out.startswith("no errors no rule knows in the last 600 s")
    assert main(["unknown", "--since", "soon"]) == 2
    assert "--since: 'soon' is not a duration" in capsys.readouterr().err


def test_suggest_from_the_state_file_writes_a_checked_draft(noisy_store, tmp_path, capsys):
    (ping,) = [e for e in noisy_store.unknown.most_frequent() if e.exceptions == ["AttributeError"]]
    out = tmp_path / "drafts"
    assert main(["rules", "suggest", ping.fingerprint[:8], "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}/gateway-http-client-attribute-error.yml and ")
    assert sorted(p.name for p in out.iterdir()) == ["gateway-http-client-attribute-error.samples.log",
                                                     "gateway-http-client-attribute-error.yml"]
    assert rules_cmd.check(str(out), out=io.StringIO()) == 0
    # The draft, used as a rule, recognises the captured noise it came from.
    printed = io.StringIO()
    assert rules_cmd.run_test([str(GATEWAY_PING)], str(out), True, "hummingbot-api", out=printed) == 0
    hits = [json.loads(x) for x in printed.getvalue().splitlines()]
    assert sum(1 for h in hits if h["rule"] == "gateway-http-client-attribute-error") == 30
    # Never over a file that exists; an unknown fingerprint is a clear error.
    assert main(["rules", "suggest", ping.fingerprint, "--out", str(out)]) == 1
    assert "exists: remove it or choose another --id" in capsys.readouterr().err
    assert main(["rules", "suggest", "v2:0000", "--stdout"]) == 1
    assert "no error no rule knows has the fingerprint 'v2:0000'" in capsys.readouterr().err
    assert main(["rules", "suggest", ping.fingerprint, "--id", "gateway-ping", "--stdout"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# ---- gateway-ping.yml\n# DRAFT")
    assert "# ---- gateway-ping.samples.log" in printed


def test_failed_deploys_the_recorder_saw_are_one_entry_and_draft_a_recorder_rule(tmp_path, capsys):
    """Each deploy names its own bot: the names the client chose are not the problem."""
    from agent.recorder.events import event_from_exchange
    from agent.unknown.suggest import suggest

    store = State(tmp_path / "s.db")
    tracker = UnknownTracker(store, Redactor())
    for n, name in enumerate(["bot-a", "bot-b", "bot-c"], 1):
        tracker.observe(event_from_exchange(
            route="deploy-v2-script", status=200, n=n,
            request={"instance_name": name, "credentials_profile": "client_sharp"},
            message=f"Error creating container {name}: 500 Server Error for http+docker://localhost/v1.47/"
                    f"containers/create?name={name}-2026112{n}-07274{n}: Internal Server Error"
                    " (\"mount denied\")"))
    tracker.flush()
    (entry,) = store.unknown.most_frequent()
    assert entry.count == 3 and entry.kind == "response"
    assert entry.samples[0]["text"].startswith('RECORDED {"route": "deploy-v2-script", "status": 200')
    out = tmp_path / "drafts"
    assert suggest(fingerprint=entry.fingerprint, from_file=None, store=store, rule_id="mount-denied",
                   out_dir=str(out), rules_dir=None) == 0
    (rule,) = load_rules(out).rules
    assert rule.source == "recorder" and rule.match[0].kind == "response"
    assert rule.match[0].route == ["deploy-v2-script"] and rule.observe_only
    for line, expect, lines in blocks((out / "mount-denied.samples.log").read_text()):
        assert check(Matcher([*LIBRARY, rule]), expect, lines) is None, line


def test_no_draft_for_an_error_a_rule_now_knows(noisy_store, tmp_path, capsys):
    (ping,) = [e for e in noisy_store.unknown.most_frequent() if e.exceptions == ["AttributeError"]]
    assert main(["rules", "suggest", ping.fingerprint, "--out", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main(["rules", "suggest", ping.fingerprint, "--rules", str(tmp_path / "d"), "--stdout"]) == 1
    assert "is recognised by the rule gateway-http-client-attribute-error now" in capsys.readouterr().err


ALPHABET = [*"abcXYZ019 _-./:'\"[](){}$*+?\\|^@#=,;\n\t✗é", "api.gateio.ws:443", "0x7f3a",
            "rb_a-20261129-072744", "2026-11-29 07:27:45,788", "bots/credentials/x", "account rc_1",
            "'NoneType'", "12", "https://h:1/p"]


def test_generalise_always_matches_its_samples_whatever_they_hold():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    texts = st.lists(st.sampled_from(ALPHABET), max_size=30).map("".join)

    @settings(max_examples=400, deadline=None)
    @given(st.lists(texts, min_size=1, max_size=3))
    def holds(samples):
        t = generalise(samples)
        rx = re.compile(t.regex)
        assert all(rx.search(s) for s in samples), (t.regex, samples)
        assert set(t.captures) <= set(rx.groupindex)

    holds()


def test_a_bots_error_from_two_bots_is_one_entry_and_drafts_by_role_and_channel(tmp_path):
    from agent.events import Origin
    from agent.unknown.suggest import suggest

    store = State(tmp_path / "s.db")
    tracker = UnknownTracker(store, Redactor())
    for name, secs in [("rb_a-20261129-072744", 42), ("rb_b-20261129-081010", 61)]:
        line = (f"2026-11-29 07:29:05,198 - hummingbot.connector.exchange.gate_io - ERROR - Order book for"
                f" pair BTC-USDT stale after {secs} s")
        for e in replay_lines([line], name, origin=Origin(name, "errors", "bot")):
            assert tracker.observe(e)
    tracker.flush()
    (entry,) = store.unknown.most_frequent()
    assert (entry.role, entry.stream, entry.count) == ("bot", "errors", 2)
    assert entry.containers == ["rb_b-20261129-081010", "rb_a-20261129-072744"]
    out = tmp_path / "drafts"
    assert suggest(fingerprint=entry.fingerprint, from_file=None, store=store, rule_id="stale-book",
                   out_dir=str(out), rules_dir=None) == 0
    (rule,) = load_rules(out).rules
    assert rule.where.roles == ["bot"] and rule.where.channels == ["errors"] and rule.where.containers is None
    samples = (out / "stale-book.samples.log").read_text()
    assert '# replay: {"role": "bot", "channel": "errors"}' in samples
    for line, expect, lines in blocks(samples):
        assert check(Matcher([*LIBRARY, rule]), expect, lines) is None, line
