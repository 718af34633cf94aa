"""invalid-deploy-name's proposal (catalogue kind 31): the name to send instead, made of the refused
value; the value itself is hostile text from a log line and never appears in the advice."""

from __future__ import annotations

import re

import pytest

from agent.actions.base import ActionContext
from agent.actions.naming import NameParams, safe_name, suggest_name
from agent.match.loader import load_rules
from tests.unit.test_rule_loader import GOOD, write

HOSTILE = ["$(reboot)", "../../etc/passwd", "a b;rm -rf /", "`id`", "x\x1b[31m", "é\u202eevil",
           "<b>*bold*</b>"]


@pytest.mark.parametrize(("value", "safe"), [
    ("experiment-falcon_0.1", "experiment-falcon_0_1"),   # the catalogue's own case (dashboard#281)
    ("my bot", "my_bot"),
    ("conf.v2.yml", "conf_v2"),                            # a config's .yml is not part of its name
    ("...", "bot"),                                         # nothing usable left
    ("../etc", "etc"),
    ("a" * 100 + ".b", "a" * 64),
])
def test_safe_name(value, safe):
    assert safe_name(value) == safe
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", safe_name(value))


def ctx(bots=None) -> ActionContext:
    return ActionContext(docker=None, api=None, bots_dir=bots)  # type: ignore[arg-type]


def test_the_instance_name_to_send_instead():
    text = suggest_name(NameParams(field="instance_name", value="experiment-falcon_0.1"), ctx())
    assert "instance_name experiment-falcon_0_1" in text and "experiment-falcon_0.1" not in text


def test_a_config_name_is_saved_under_the_safe_name():
    text = suggest_name(NameParams(field="script_config", value="conf.v2.yml"), ctx())
    assert "conf_v2.yml" in text and "bots/conf/scripts" in text and "script_config conf_v2" in text
    text = suggest_name(NameParams(field="controllers_config", value="pmm 1.yml"), ctx())
    assert "pmm_1.yml" in text and "bots/conf/controllers" in text


def test_a_profile_is_one_that_exists(tmp_path):
    for name in ("master_account", "client_sharp", "bad name"):
        (tmp_path / "credentials" / name).mkdir(parents=True)
    (tmp_path / "credentials" / "a-file").write_text("")
    text = suggest_name(NameParams(field="credentials_profile", value="other.one"), ctx(tmp_path))
    assert "one of the existing credentials profiles: client_sharp, master_account" in text, text
    text = suggest_name(NameParams(field="credentials_profile", value="client sharp"), ctx(tmp_path))
    assert text.endswith("credentials_profile client_sharp (it exists)"), text
    text = suggest_name(NameParams(field="credentials_profile", value="x.y"), ctx())  # no bots folder
    assert "GET /accounts/" in text


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["instance_name", "credentials_profile", "script_config"])
def test_hostile_values_never_reach_the_advice(tmp_path, field, value):
    (tmp_path / "credentials" / "master_account").mkdir(parents=True)
    text = suggest_name(NameParams(field=field, value=value), ctx(tmp_path))
    assert value not in text
    assert not re.search(r"[$`;<>*\x00-\x1f\u202e]", text), text


def test_only_a_telling_action_may_take_free_text(tmp_path):
    """Free text is for messages, and for actions that only tell (their result is a message)."""
    telling = GOOD.format(id="my-rule").replace(
        "captures:\n  profile: {type: name}", "captures:\n  profile: {type: text}").replace(
        'action: ensure_account\n    params: {profile: "{profile}"}',
        'action: suggest_name\n    params: {field: instance_name, value: "{profile}"}')
    assert load_rules(write(tmp_path, telling)).errors == []


def test_a_secret_in_the_name_stays_out_of_the_advice():
    text = suggest_name(NameParams(field="instance_name", value="x CONFIG_PASSWORD=CfgPw-canary-5521"), ctx())
    assert "canary" not in text and "5521" not in text, text
