"""The command table: each command says what it does, the parser is made of the table and
nothing else, and the settings are read through Settings only (`hb-medic health` too)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.cli import build_parser, main, table
from agent.commands import GROUPS
from agent.settings import Settings
from tests.stack import REPO

AGENT = Path(__file__).resolve().parents[2] / "agent"


def subcommands(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    """A parser's subcommands by word, and the help of each."""
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices), {a.dest: a.help for a in action._choices_actions}


def parsed() -> dict[tuple[str, ...], tuple[argparse.ArgumentParser, str]]:
    """Every command the parser knows, by its words: its parser and its help."""
    out = {}
    top, helps = subcommands(build_parser())
    for word, parser in top.items():
        if parser.get_default("run") is None:  # a group: its commands under it
            below, below_helps = subcommands(parser)
            out |= {(word, w): (p, below_helps[w]) for w, p in below.items()}
        else:
            out[(word,)] = (parser, helps[word])
    return out


def test_every_command_and_group_has_help():
    commands = table()
    assert commands
    for cmd in commands:
        assert cmd.help.strip(), cmd.words
    for group in GROUPS:
        assert group.help.strip(), group.word


def test_the_parser_is_the_table():
    commands = {cmd.words: cmd for cmd in table()}
    assert len(commands) == len(table()), "a command is declared twice"
    made = parsed()
    assert set(made) == set(commands)
    for words, (parser, shown) in made.items():
        assert parser.get_default("run") is commands[words].run, words
        assert shown == commands[words].help, words
    assert {w[0] for w in commands if len(w) > 1} == {g.word for g in GROUPS}


ENV_READ = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*["']([A-Z0-9_]+)["']""")


def test_no_module_reads_a_setting_from_the_environment():
    """A setting is read through Settings (environment, secret files, config file, validation),
    never from os.environ beside it."""
    assert ENV_READ.findall('os.environ.get("MEDIC_HTTP_ADDR", "x") os.environ["MEDIC_A"] os.getenv("B")') \
        == ["MEDIC_HTTP_ADDR", "MEDIC_A", "B"]
    prefix = Settings.model_config["env_prefix"]
    settings = {prefix + name.upper() for name in Settings.model_fields}
    found = [f"{path.relative_to(AGENT.parent)}: {name}"
             for path in sorted(AGENT.rglob("*.py")) for name in ENV_READ.findall(path.read_text())
             if name in settings]
    # The one exception: `hb-medic health` (the image's HEALTHCHECK, every 15 s) reads its address
    # without loading pydantic when nothing but the environment can set it; the test below holds
    # it to what the settings say.
    assert found == ["agent/run_cmd.py: MEDIC_HTTP_ADDR"]


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"healthy": true}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def healthz():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    _Healthz.status = 200


def test_health_asks_where_the_settings_say_the_agent_listens(healthz, monkeypatch, tmp_path, capsys):
    for name in ("MEDIC_HTTP_ADDR", "MEDIC_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    port = healthz.server_address[1]
    monkeypatch.setenv("MEDIC_HTTP_ADDR", f"0.0.0.0:{port}")  # the image's setting: asked on loopback
    assert main(["health"]) == 0
    assert '"healthy": true' in capsys.readouterr().out
    _Healthz.status = 503
    assert main(["health"]) == 1
    _Healthz.status = 200
    monkeypatch.delenv("MEDIC_HTTP_ADDR")
    config = tmp_path / "medic.yml"
    config.write_text(f"http_addr: 127.0.0.1:{port}\n")
    monkeypatch.setenv("MEDIC_CONFIG_FILE", str(config))  # where the agent itself then listens
    assert main(["health"]) == 0
    monkeypatch.setenv("MEDIC_HTTP_ADDR", "nowhere")
    capsys.readouterr()
    assert main(["health"]) == 1
    assert "hb-medic: bad setting MEDIC_HTTP_ADDR" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["rules", "check"], ["health"], ["run"]])
def test_a_config_file_that_is_not_yaml_is_one_clear_line(argv, tmp_path):
    config = tmp_path / "stacks.yml"
    config.write_text("stacks: [\n")
    env = {**os.environ, "MEDIC_CONFIG_FILE": str(config)}
    done = subprocess.run([sys.executable, "-m", "agent", *argv], env=env, capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode in (1, 2)
    assert f"hb-medic: {config} is not valid YAML:" in done.stderr and "line 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_health_loads_no_pydantic_when_only_the_environment_sets_its_address(tmp_path):
    """The image's HEALTHCHECK runs `hb-medic health` every 15 s: it must stay light."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env["MEDIC_HTTP_ADDR"] = "127.0.0.1:9"  # nothing listens: unhealthy, and quickly said
    code = "import sys\nfrom agent.cli import main\nmain(['health'])\nprint('pydantic' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert done.stdout.strip() == "False", done.stderr
