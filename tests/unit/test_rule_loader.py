"""Rule files with one mistake each: the error names the file, the line and the fix."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agent.match.loader import load_rules
from agent.match.model import Rule

GOOD = """\
id: {id}
description: a test rule
severity: warning
match:
  - kind: line
    level: ERROR
    message: "^Error deploying V2 script: (?P<profile>\\\\S+)$"
captures:
  profile: {{type: name}}
actions:
  - action: ensure_account
    params: {{profile: "{{profile}}"}}
notify:
  title: "profile {{profile}}"
  text: something broke
"""


def write(tmp_path: Path, text: str, name: str = "my-rule") -> Path:
    (tmp_path / f"{name}.yml").write_text(textwrap.dedent(text))
    return tmp_path


def errors(tmp_path: Path) -> list[str]:
    return [str(e) for e in load_rules(tmp_path).errors]


def test_good_rule_loads(tmp_path):
    result = load_rules(write(tmp_path, GOOD.format(id="my-rule")))
    assert result.errors == [] and [r.id for r in result.rules] == ["my-rule"]


@pytest.mark.parametrize(("change", "expected"), [
    (("    level: ERROR\n", "    level: ERROR\n   bad: [\n"), ":7: not valid YAML"),
    (("    message:", "    mesage:"), ":7: match[0].mesage: unknown field (did you mean 'message'?)"),
    (("(?P<profile>\\\\S+)$", "(?P<profile>\\\\S+$"),
     ":7: match[0].message: bad regular expression: missing ), unterminated subpattern at position 28"),
    (("action: ensure_account", "action: ensure_acount"),
     ":11: unknown action 'ensure_acount' (did you mean 'ensure_account'?)"),
    (('params: {profile: "{profile}"}', 'params: {profil: "{profile}"}'),
     ":12: action ensure_account has no parameter 'profil' (did you mean 'profile'?)"),
    (('title: "profile {profile}"', 'title: "profile {profle}"'),
     ":14: notify.title: template names {profle}, which is not a capture (did you mean {profile}?)"),
    (("(?P<profile>", "(?P<account>"),
     ":7: match[0].message: group (?P<account>...) is not declared under captures:"),
    (("severity: warning", "severity: urgent"),
     ":3: severity: Input should be 'critical', 'error', 'warning' or 'info'"),
    (("  text: something broke\n", ""), ":13: notify.text: required field missing"),
    (("captures:\n  profile: {type: name}", "captures:\n  profile: {type: text}"),
     ":12: actions[0].params.profile: capture 'profile' is free text and may only be used in messages"),
    (("id: my-rule", "id: other-rule"), ":1: id 'other-rule' must match the file name (my-rule.yml)"),
    (("(?P<profile>\\\\S+)$\"\n", "(?P<profile>\\\\S+)$\"\n    sets: {reason: gone}\n"),
     ":8: sets 'reason', which is not declared under captures:"),
    (('    params: {profile: "{profile}"}\n', '    params: {profile: "{profile}"}\n    when: {reason: x}\n'),
     ":13: when names 'reason', which is not a capture"),
    (("notify:", "incident: {quiet: 600}\nnotify:"),
     ":13: quiet is for rules that only tell (no actions, verify or retry_deploy)"),
])
def test_each_mistake_names_file_line_and_fix(tmp_path, change, expected):
    text = GOOD.format(id="my-rule").replace(*change)
    assert text != GOOD.format(id="my-rule"), "the change did not apply"
    found = errors(write(tmp_path, text))
    # The first error is the mistake itself (a consequence may follow it).
    assert found and expected in found[0] and found[0].startswith(str(tmp_path / "my-rule.yml")), found


def test_wrong_parameter_type_and_missing_parameter(tmp_path):
    text = GOOD.format(id="my-rule").replace(
        'params: {profile: "{profile}"}', 'params: {}\n  - action: wait_http\n    params: {timeout: soon}')
    found = errors(write(tmp_path, text))
    assert any(e.endswith(":11: action ensure_account needs parameter 'profile'") for e in found), found
    assert any("action wait_http, parameter timeout: Input should be a valid number" in e
               for e in found), found


def test_duplicate_ids_and_key_given_twice(tmp_path):
    write(tmp_path, GOOD.format(id="my-rule"))
    dup = GOOD.format(id="my-rule").replace("severity: warning", "severity: warning\nseverity: error")
    (tmp_path / "zz.yml").write_text(dup)
    found = errors(tmp_path)
    assert any(e.endswith(":4: severity: key given twice") for e in found), found
    # A copy of a rule keeps its id: one rule, one file, one id.
    assert any("id 'my-rule' must match the file name (zz.yml); a copied rule needs its own id" in e
               for e in found), found


def test_schema_is_the_model_schema():
    out = subprocess.run([sys.executable, "-m", "agent", "rules", "schema"], capture_output=True,
                         text=True, check=True)
    schema = json.loads(out.stdout)
    assert schema == Rule.model_json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"id", "description", "severity", "match", "notify"}


def test_rules_check_exit_codes(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "agent", "rules", "check"], capture_output=True, text=True)
    shipped = len(list((Path(__file__).resolve().parents[2] / "rules").glob("*.yml")))
    assert ok.returncode == 0 and ok.stdout.startswith(f"{shipped} rules OK")
    write(tmp_path, GOOD.format(id="my-rule").replace("message:", "mesage:"))
    bad = subprocess.run([sys.executable, "-m", "agent", "rules", "check", "--rules", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "my-rule.yml:7: match[0].mesage: unknown field" in bad.stdout


def test_retry_deploy_is_an_action_or_the_older_flag(tmp_path):
    """`retry_deploy: true` (the shipped rules' form, and user rules written before) and
    `- action: retry_deploy` listed last are one rule; either way it runs after the verify steps."""
    flag = GOOD.format(id="my-rule").replace("notify:", "retry_deploy: true\nnotify:")
    listed = GOOD.format(id="my-rule").replace("notify:", "  - action: retry_deploy\nnotify:")
    rules = []
    for text in (flag, listed):
        result = load_rules(write(tmp_path, text))
        assert result.errors == [], result.errors
        rules.append(result.rules[0])
    assert [c.action for c in rules[0].actions] == [c.action for c in rules[1].actions] \
        == ["ensure_account", "retry_deploy"]
    assert rules[0].retry_deploy and rules[1].retry_deploy
    assert Rule.model_validate(rules[0].model_dump()).actions == rules[0].actions  # not appended twice


@pytest.mark.parametrize(("change", "expected"), [
    (("actions:\n", "actions:\n  - action: retry_deploy\n"),
     ":11: retry_deploy runs after the verify steps: list it last of the actions"),
    (("notify:", "  - action: retry_deploy\n    params: {route: deploy-v2-script}\nnotify:"),
     ":14: action retry_deploy takes no parameters: it sends the failed request as it was"),
    (("notify:", "  - action: retry_deploy\n    when: {profile: x}\nnotify:"),
     ":14: retry_deploy takes no when: it re-sends whatever failed deploy the incident owns"),
])
def test_retry_deploy_mistakes(tmp_path, change, expected):
    text = GOOD.format(id="my-rule").replace(*change)
    found = errors(write(tmp_path, text))
    assert any(expected in e for e in found), found


@pytest.mark.parametrize(("change", "expected"), [
    # A telling action beside one that changes things: its advice would be lost, the incident "fixed".
    (("actions:\n", "actions:\n  - action: disk_usage\n"),
     ":11: disk_usage only tells (its incident ends told, nothing changed): a rule's actions are all such"),
    (("notify:", "verify:\n  - action: disk_usage\nnotify:"),
     ":14: disk_usage only tells: it is no check; list it under actions"),
    (('actions:\n  - action: ensure_account\n    params: {profile: "{profile}"}\n',
      "actions:\n  - action: disk_usage\nretry_deploy: true\n"),
     ":11: disk_usage only tells"),
])
def test_telling_actions_stand_alone(tmp_path, change, expected):
    text = GOOD.format(id="my-rule").replace(*change)
    assert text != GOOD.format(id="my-rule"), "the change did not apply"
    found = errors(write(tmp_path, text))
    assert any(expected in e for e in found), found


def test_a_rule_of_telling_actions_alone_loads(tmp_path):
    text = GOOD.format(id="my-rule").replace(
        'actions:\n  - action: ensure_account\n    params: {profile: "{profile}"}\n',
        "actions:\n  - action: disk_usage\n")
    result = load_rules(write(tmp_path, text))
    assert result.errors == [] and [c.action for c in result.rules[0].actions] == ["disk_usage"]


def test_libyaml_reads_every_shipped_rule_as_the_pure_python_loader_does():
    """The loader reads through libyaml where PyYAML has it (the agent's start, `rules test`):
    every shipped rule file gives the same data, and every key and item the same line, as through
    the pure-Python loader whose words tell the mistakes."""
    import yaml

    from agent.match import loader

    def lines(node, out):
        out.append((type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column))
        for item in node.value if isinstance(node, yaml.SequenceNode | yaml.MappingNode) else ():
            for part in item if isinstance(item, tuple) else (item,):
                lines(part, out)
        return out

    if loader._FAST is None:
        pytest.skip("this PyYAML was built without libyaml: the pure-Python loader reads the rules")
    files = sorted((Path(__file__).resolve().parents[2] / "rules").glob("*.yml"))
    assert files
    for path in files:
        text = path.read_text()
        node, data = loader._parse(text)
        assert data == yaml.safe_load(text), path.name
        assert lines(node, []) == lines(yaml.compose(text, Loader=yaml.SafeLoader), []), path.name
