"""Redaction masks secrets and nothing else: names a person needs stay readable."""

from __future__ import annotations

from agent.events import Event, stamp
from agent.redact import MASK, Redactor, secret_name


def test_field_names_judged_by_their_last_word():
    secret = ["password", "config_password", "PASSWORD", "binance_api_key", "binance_api_secret",
              "kraken_secret_key", "access_token", "apiKey", "private_key", "passphrase", "Authorization",
              "credentials", "api-secret"]
    public = ["credentials_profile", "instance_name", "key", "token_url", "password_verification_file",
              "username", "account_name", "keys_count", "image", "script_config"]
    assert [n for n in secret if not secret_name(n)] == []
    assert [n for n in public if secret_name(n)] == []


def test_deploy_body_readable_secrets_masked():
    r = Redactor(["s3cret-pw-123"])
    body = {"instance_name": "sharp-bot", "credentials_profile": "client_sharp", "headless": True,
            "config_password": "anything", "extra": {"binance_api_key": "AKIA0000", "note": "s3cret-pw-123"}}
    assert r.data(body) == {"instance_name": "sharp-bot", "credentials_profile": "client_sharp",
                            "headless": True, "config_password": MASK,
                            "extra": {"binance_api_key": MASK, "note": MASK}}
    assert r.text("http://admin:hunter22@127.0.0.1:8000/") == f"http://admin:{MASK}@127.0.0.1:8000/"


def test_a_user_name_equal_to_the_password_stays_readable():
    # hummingbot-api's default login is admin/admin: masking "admin" hides the user and protects nothing.
    r = Redactor(["admin"], public=["admin"])
    line = "hummingbot-api: http://127.0.0.1:8000 as admin"
    assert r.text(line) == line
    bob = Redactor(["bobs-password"], public=["bob"])
    assert bob.text("as bob with bobs-password") == f"as bob with {MASK}"


def test_where_an_event_is_in_the_log():
    ev = Event("hummingbot-api", "stderr", "traceback", ["a", "b"], 5 << 10, 9 << 10,
               ts=1_782_741_787_515_012_340, last_ts=1_782_741_787_600_000_000)
    assert ev.where() == {"container": "hummingbot-api", "stream": "stderr",
                          "first": "2026-06-29T14:03:07.515012340Z", "last": "2026-06-29T14:03:07.600000000Z"}
    assert stamp(1_782_741_787_000_000_000) == "2026-06-29T14:03:07.000000000Z"  # as docker logs -t
    assert Event("x", "stdout", "line", ["a"], 1, 1).where() == {"container": "x", "stream": "stdout"}


def test_a_notify_urls_tokens_are_secret_its_host_names_are_not():
    from agent.service import url_tokens

    assert url_tokens("https://hooks.slack.com/services/T0AAAAAAAAA/B0BBBBBBBBBB/XyZ123abcDEF456ghi") == [
        "B0BBBBBBBBBB", "XyZ123abcDEF456ghi"]
    assert url_tokens("slack://T1JJ3T3L2A/A1BRTD4JD12/TIiajkdnlazkcOXrIdevi7FQ/#general") == [
        "TIiajkdnlazkcOXrIdevi7FQ"]
    assert url_tokens("tgram://123456:ABCdefGHIjklMNOpqr/-100123") == ["ABCdefGHIjklMNOpqr"]
    assert url_tokens("json://api.telegram.org:8443/path?token=SECRETsecret99") == ["SECRETsecret99"]
