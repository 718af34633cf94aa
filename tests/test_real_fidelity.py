"""Live fidelity: the same deploy on the REAL programs (tests/realstack: the real hummingbot-api with
its broker and database, deploying real Hummingbot bots) and on the stand-ins (tests/stack.py,
tests/standin), compared after normalising only what legitimately differs. test_fidelity.py holds the
stand-in against static captures; this holds it against the running programs, so a stand-in that
drifts from what the agent will meet fails here. Where the two differ, the stand-in is fixed, never
this comparison.

Normalised: timestamps and the instance names' -YYYYMMDD-HHMMSS, pids, ports, stack prefixes; in
tracebacks the line numbers, the Python version in paths, caret lines and a statement's further lines
(3.13 prints them, the stand-ins' 3.11 does not). A traceback is compared by its exception lines and
its last three frames (file, function, code).

Left out on both sides: the lines of exchanges out of reach (the time synchroniser's and the rate
oracle's). This machine has no route to any exchange, so every real bot running a strategy prints
them within seconds; they are the surroundings, not the scenario (the stand-in prints them for the
exchanges a test cuts off: tests/test_breadth.py). Likewise hummingbot-api's gateway ping, which runs
on a timer whatever is deployed.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from pprint import pformat

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from tests.images import BOT_IMAGE as STANDIN_BOT
from tests.realstack.images import BOT_IMAGE as REAL_BOT
from tests.realstack.images import ensure_real_images
from tests.realstack.scripts import RAISE_TICK
from tests.realstack.stack import CONFIG_PASSWORD, RealStack
from tests.stack import Stack, free_port, labels, wait_until

pytestmark = pytest.mark.docker

LAST_FRAMES = 3
NOISE_LOGGERS = ("time_synchronizer", "rate_source_base", "gateway_http_client")
# A .password_verification of another password, made by each side's own bot image with its own code.
OTHER_PASSWORD = ("from hummingbot.client.config.config_crypt import ETHKeyFileSecretManger,"
                  " store_password_verification;"
                  " store_password_verification(ETHKeyFileSecretManger('not-admin'))")

Frame = tuple[str, str, str]  # path, function, first line of code
Traceback = tuple[tuple[str, ...], tuple[Frame, ...]]  # exception lines of the chain, last frames
Item = tuple[str, str, str, Traceback | None]  # logger ("" for a plain line), level, text, traceback


# -- the two sides ------------------------------------------------------------------------------
@dataclass
class Side:
    """One stack of the comparison and the bot image its hummingbot-api deploys."""

    kind: str
    stack: RealStack | Stack
    image: str

    @property
    def bots(self) -> Path:
        return self.stack.bots

    def container(self, name: str) -> Container:
        return self.stack.client.containers.get(name)


@pytest.fixture(scope="module")
def real(docker_client: docker.DockerClient) -> Iterator[Side]:
    """The real current generation, shared by this module's tests (each deploys under its own tag)."""
    ensure_real_images(docker_client, log=lambda _msg: None)
    with RealStack(docker_client, "current") as stack:
        yield Side("real", stack, REAL_BOT)


@pytest.fixture(scope="module")
def standin(docker_client: docker.DockerClient) -> Iterator[Side]:
    """The stand-in, set up as the real one: its bots get CONFIG_PASSWORD=admin, its hummingbot-api
    pings the gateway every 2 s (the real current generation's library does)."""
    with Stack(docker_client, env={"CONFIG_PASSWORD": CONFIG_PASSWORD}, gateway_ping=2) as stack:
        yield Side("standin", stack, STANDIN_BOT)


def new_tag() -> str:
    """A test's prefix for its instance and profile names: the module's stacks are shared."""
    return f"f{uuid.uuid4().hex[:5]}_"


# -- normalising and reading what the programs print --------------------------------------------
FILE_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - (?:\d+ - )?(?P<logger>\S+) - "
                         r"(?P<level>[A-Z]+) - (?P<text>.*)$")
CONSOLE_RECORD = re.compile(r"^\d\d:\d\d:\d\d - (?P<logger>\S+) - (?P<text>.*)$")
FRAME = re.compile(r'^\s+File "(?P<path>[^"]+)", line \d+, in (?P<function>.+)$')
CHAIN = ("During handling of the above exception, another exception occurred:",
         "The above exception was the direct cause of the following exception:")


def normal(text: str) -> str:
    """What differs from run to run or stack to stack, made equal."""
    text = re.sub(r"-\d{8}-\d{6}\b", "-<ts>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    text = re.sub(r"^\d\d:\d\d:\d\d\.\d{3} ", "<time> ", text)  # logfire's request line
    return re.sub(r"\bmedic-[rt][0-9a-f]{8}-", "<stack>-", text)


def _traceback(lines: list[str], i: int) -> tuple[Traceback, int]:
    """The traceback starting at lines[i]: its chain's exception lines and the last frames of the
    last one; and the index after it."""
    exceptions: list[str] = []
    while True:
        i += 1
        frames: list[Frame] = []
        while i < len(lines) and (frame := FRAME.match(lines[i])):
            i += 1
            code = ""
            if i < len(lines) and lines[i].startswith(" ") and not FRAME.match(lines[i]):
                code = lines[i].strip()
            while i < len(lines) and lines[i].startswith(" ") and not FRAME.match(lines[i]):
                i += 1  # the code, a statement's further lines, carets, "...<n lines>..."
            frames.append((re.sub(r"python3\.\d+", "python3.X", frame["path"]), frame["function"], code))
        exceptions.append(normal(lines[i]) if i < len(lines) else "")
        i += 1
        k = i
        while k < len(lines) and not lines[k].strip():
            k += 1
        if k < len(lines) and lines[k] in CHAIN:
            k += 1
            while k < len(lines) and not lines[k].strip():
                k += 1
            if k < len(lines) and lines[k].startswith("Traceback"):
                i = k
                continue
        return (tuple(exceptions), tuple(frames[-LAST_FRAMES:])), i


def parse(lines: list[str], console: bool = False) -> list[tuple[int, Item]]:
    """Records (logger, level, message) with the traceback that follows one, bare tracebacks and
    other lines, each with the index of its first line."""
    lines = [x.rstrip("\r") for x in lines]
    out: list[tuple[int, Item]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("Traceback"):
            tb, end = _traceback(lines, i)
            if out and out[-1][0] == i - 1 and out[-1][1][3] is None:  # the record it belongs to
                start, (logger, level, text, _) = out.pop()
                out.append((start, (logger, level, text, tb)))
            else:
                out.append((i, ("", "", "", tb)))
            i = end
            continue
        record = (CONSOLE_RECORD if console else FILE_RECORD).match(line)
        if record:
            item = (record["logger"], record.groupdict().get("level") or "", normal(record["text"]), None)
        else:
            item = ("", "", normal(line), None)
        out.append((i, item))
        i += 1
    return [(i, item) for i, item in out if item[0].rsplit(".", 1)[-1] not in NOISE_LOGGERS]


def _digits(item: Item) -> Item:
    """The item with its numbers made equal: lines a running bot repeats with a counter."""
    logger, level, text, tb = item
    return logger, level, re.sub(r"\d+", "#", text), tb


def as_running(items: list[Item], cut: str | None) -> dict[str, list[Item]]:
    """A running bot's lines, per logger (its threads interleave), each run of lines that differ only
    in numbers (tick 1, tick 2...) as its first one, up to and with the first one saying `cut`."""
    groups: dict[str, list[Item]] = {}
    for item in items:
        group = groups.setdefault(item[0], [])
        if not (group and _digits(group[-1]) == _digits(item)):
            group.append(item)
    if cut:
        for logger, group in groups.items():
            at = next((k for k, item in enumerate(group) if cut in item[2]), None)
            if at is not None:
                groups[logger] = group[:at + 1]
    return groups


# -- a bot's fate -------------------------------------------------------------------------------
@dataclass
class Fate:
    """What the engine, the bot's channels and hummingbot-api say of one bot."""

    running: bool
    exit_code: int | None
    console: str
    channels: dict[str, list[Item]]  # "console" and each file of the instance's logs/
    status: dict

    def view(self, cut: str | None = None) -> dict:
        """The comparable part: a dead bot's lines in order, a running one's per logger up to `cut`."""
        return {"running": self.running, "exit_code": self.exit_code, "status": self.status,
                "channels": {k: as_running(v, cut) if self.running else v for k, v in self.channels.items()}}


def _log_summary(entries: list[dict], digits: bool) -> list:
    """hummingbot-api's error_logs or general_logs: each distinct record the bot sent over MQTT."""
    seen = set()
    for entry in entries:
        lines = str(entry.get("msg", "")).splitlines() or [""]
        tb = parse(lines[1:])[0][1][3] if len(lines) > 1 and lines[1].startswith("Traceback") else None
        item = (entry.get("logger_name", ""), entry.get("level_name", ""), normal(lines[0]), tb)
        if item[0].rsplit(".", 1)[-1] not in NOISE_LOGGERS:
            seen.add(_digits(item) if digits else item)
    return sorted(seen, key=repr)


def status_of(side: Side, name: str) -> dict:
    """/bot-orchestration/status and /bot-orchestration/<bot>/status of one bot."""
    listed = side.stack.http("GET", "/bot-orchestration/status").json()["data"].get(name)
    if listed is None:
        alone = side.stack.http("GET", f"/bot-orchestration/{name}/status").json()
        return {"listed": False, "bot": normal(repr(alone))}
    return {"listed": True, "fields": sorted(listed), "status": listed["status"],
            "performance": listed["performance"], "recently_active": listed["recently_active"],
            "error_logs": _log_summary(listed["error_logs"], digits=False),
            "general_logs": _log_summary(listed["general_logs"], digits=True)}


def fate(side: Side, name: str) -> Fate:
    """One look at a bot: the engine's state, docker logs, every file of its logs/, its status."""
    bot = side.container(name)
    bot.reload()
    state = bot.attrs["State"]
    console = bot.logs().decode(errors="replace").replace("\r", "")
    channels = {"console": [item for _, item in parse(console.splitlines(), console=True)]}
    for path in sorted((side.bots / "instances" / name / "logs").iterdir()):
        channels[path.name] = [item for _, item in parse(path.read_text(errors="replace").splitlines())]
    running = bool(state["Running"])
    return Fate(running, None if running else state["ExitCode"], console, channels, status_of(side, name))


# -- the scenarios ------------------------------------------------------------------------------
def add_account(side: Side, profile: str) -> Path:
    """A profile made as a user makes one (hummingbot-api copies master_account)."""
    answer = side.stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    assert answer.status_code == 201, (side.kind, answer.text)
    return side.bots / "credentials" / profile


def script_config(side: Side, name: str, script: str) -> str:
    """bots/conf/scripts/<name>.yml, the same file on both sides (the stand-in has no route for it)."""
    (side.bots / "conf" / "scripts" / f"{name}.yml").write_text(
        f"script_file_name: {script}\ncontrollers_config: []\n")
    return f"{name}.yml"


def prepare(side: Side, tag: str, case: str) -> tuple[str, str]:
    """The files that make `case`, the same on both sides: a profile, and a script config."""
    profile = f"{tag}acct_{case}"
    folder = add_account(side, profile)
    config = script_config(side, f"{tag}cfg", "v2_with_controllers.py")
    if case == "password":
        side.stack.client.containers.run(
            side.image, ["-c", OTHER_PASSWORD], entrypoint="/opt/venv/bin/python",
            working_dir="/home/hummingbot",
            volumes={str(folder): {"bind": "/home/hummingbot/conf", "mode": "rw"}}, network_mode="none",
            labels=labels(f"fid-{tag}"), remove=True)
    elif case == "pv_missing":
        (folder / ".password_verification").unlink()
    elif case == "pv_damaged":
        (folder / ".password_verification").write_text("zz-not-hex!!")
    elif case == "no_script":
        config = script_config(side, f"{tag}nosuch", f"{tag}no_such_script.py")
    elif case == "tick":
        (side.bots / "scripts" / f"{tag}raise_tick.py").write_text(RAISE_TICK)
        config = script_config(side, f"{tag}tick", f"{tag}raise_tick.py")
    elif case == "mqtt":  # a port nothing listens on
        conf = folder / "conf_client.yml"
        text, found = re.subn(r"(?m)^(\s*mqtt_port:) \d+$", rf"\g<1> {free_port()}", conf.read_text())
        assert found == 1, conf.read_text()
        conf.write_text(text)
    return profile, config


def deploy_all(side: Side, tag: str, cases: tuple[str, ...]) -> dict[str, str]:
    """The cases' files, then one deploy each, side by side: the same body but the bot image."""
    made = {case: prepare(side, tag, case) for case in cases}
    names = {}
    for case, (profile, config) in made.items():
        instance = f"{tag}{case}"
        # Both sides deploy this name on one engine, and each hummingbot-api adds the second to it:
        # the second side waits for the next second, or the two containers' names collide.
        wait = int(_DEPLOYED.get(instance, 0)) + 1.05 - time.time()
        if wait > 0:
            time.sleep(wait)
        answer = side.stack.http("POST", "/bot-orchestration/deploy-v2-script", json={
            "instance_name": instance, "credentials_profile": profile, "image": side.image,
            "script_config": config, "headless": True})
        _DEPLOYED[instance] = time.time()
        assert answer.status_code == 200 and answer.json().get("success"), (side.kind, case, answer.text)
        names[case] = answer.json()["unique_instance_name"]
    return names


_DEPLOYED: dict[str, float] = {}  # instance name -> when a side's deploy of it was answered


def remove(side: Side, names: dict[str, str]) -> None:
    """This test's bots go (real ones hold a core each while they start)."""
    for name in names.values():
        with contextlib.suppress(NotFound):
            side.container(name).remove(force=True)


def settled(sides: list[Side], names: dict[str, dict[str, str]], done: Callable[[str, Fate], bool],
            timeout: float) -> dict[str, dict[str, Fate]]:
    """Every bot's fate on both sides, once `done` holds for all of them at once, or as they are after
    `timeout` s (a stand-in that never gets there shows how it differs, not a timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        fates = {side.kind: {case: fate(side, name) for case, name in names[side.kind].items()}
                 for side in sides}
        if time.monotonic() > deadline or all(done(c, f) for by in fates.values() for c, f in by.items()):
            return fates
        time.sleep(2)


def differences(fates: dict[str, dict[str, Fate]], cuts: dict[str, str] | None = None) -> list[str]:
    """Each case where the stand-in's view is not the real one's, both shown."""
    out = []
    for case, real_fate in fates["real"].items():
        cut = (cuts or {}).get(case)
        real_view, standin_view = real_fate.view(cut), fates["standin"][case].view(cut)
        if real_view != standin_view:
            keys = [k for k in real_view if real_view[k] != standin_view[k]]
            out.append(f"{case}: differs in {keys}\n" + shown({"real": {k: real_view[k] for k in keys},
                                                              "standin": {k: standin_view[k] for k in keys}}))
    return out


def shown(got: dict) -> str:
    """Both sides, one under the other, for a failure's message."""
    return "\n".join(f"{kind}:\n{pformat(value, width=110)}" for kind, value in got.items())


# -- hummingbot-api: the seed deploy, both generations ------------------------------------------
def seed(side: Side, tag: str, done: str) -> tuple[tuple, dict[str, list]]:
    """The seed incident's deploy (its profile does not exist): the answer, and what hummingbot-api
    printed on each stream from the deploy on."""
    marks = {stream: len(side.stack.lines(stream)) for stream in ("stdout", "stderr")}
    answer = side.stack.http("POST", "/bot-orchestration/deploy-v2-script", json={
        "instance_name": f"{tag}sharp-bot", "credentials_profile": f"{tag}client_sharp",
        "image": "hummingbot/hummingbot:latest", "script_config": "sharp.yml", "headless": False})

    def since_mark(stream: str, words: str) -> bool:
        return any(words in x for x in side.stack.lines(stream)[marks[stream]:])

    wait_until(lambda: since_mark("stderr", done) and since_mark("stdout", "deploy-v2-script HTTP/1.1"),
               30, f"the seed deploy's lines on the {side.kind} side", interval=0.5)
    printed = {stream: [item for at, item in parse(side.stack.lines(stream)) if at >= marks[stream]]
               for stream in ("stdout", "stderr")}
    return (answer.status_code, answer.headers.get("content-type"), answer.text), printed


def test_real_seed_deploy_current_answers_and_prints_as_the_standin(real: Side, standin: Side) -> None:
    """The current generation: 500 with the missing profile's error as JSON, one ERROR record."""
    tag = new_tag()
    got = {side.kind: seed(side, tag, "Error deploying V2 script") for side in (real, standin)}
    assert got["standin"] == got["real"], shown(got)
    assert got["real"][0][0] == 500


def test_real_seed_deploy_legacy_answers_and_prints_as_the_standin(
        docker_client: docker.DockerClient) -> None:
    """The legacy generation: uvicorn's plain-text 500 and the traceback that escaped (its last frames
    are hummingbot-api's own route, its docker service and shutil)."""
    tag = new_tag()
    with RealStack(docker_client, "legacy") as real_legacy, Stack(
            docker_client, generation="legacy", env={"CONFIG_PASSWORD": CONFIG_PASSWORD}) as standin_legacy:
        sides = (Side("real", real_legacy, REAL_BOT), Side("standin", standin_legacy, STANDIN_BOT))
        got = {side.kind: seed(side, tag, "FileNotFoundError") for side in sides}
    assert got["standin"] == got["real"], shown(got)
    assert got["real"][0][:2] == (500, "text/plain; charset=utf-8")


# -- bots, current generation -------------------------------------------------------------------
DYING = ("password", "pv_missing", "pv_damaged", "no_script")
RUNNING = ("tick", "mqtt", "healthy")


def test_real_bots_that_die_at_start_die_as_the_standins(real: Side, standin: Side) -> None:
    """Wrong password (exit 0, one record in errors.log), .password_verification missing or damaged
    (exit 1, the traceback in errors.log), a script that does not exist (exit 1, four lines on the
    console and in logs_hummingbot.log); hummingbot-api forgets each once it is gone."""
    tag = new_tag()
    sides = [real, standin]
    names = {}
    try:
        for side in sides:
            names[side.kind] = deploy_all(side, tag, DYING)
        fates = settled(sides, names, lambda _case, f: not f.running and not f.status["listed"], 240)
        found = differences(fates)
        assert not found, "\n\n".join(found)
        assert {case: f.exit_code for case, f in fates["real"].items()} == {
            "password": 0, "pv_missing": 1, "pv_damaged": 1, "no_script": 1}
    finally:
        for side in sides:
            remove(side, names.get(side.kind, {}))


def _running_done(case: str, f: Fate) -> bool:
    """Far enough to compare: the tick errors heard by hummingbot-api, the MQTT start given up once,
    the healthy bot heard."""
    if not f.running:
        return True  # a difference the comparison shows
    status = f.status
    if case == "tick":
        return f.console.count("Unexpected error running clock tick") >= 3 and bool(status.get("error_logs"))
    if case == "mqtt":
        return "MQTT Bridge failed to connect to the broker" in f.console
    return status.get("recently_active") is True and "MQTT Bridge connected with success." in f.console


def test_real_bots_that_keep_running_run_as_the_standins(real: Side, standin: Side) -> None:
    """A real V2 script raising in on_tick (the clock's error and traceback every second, forwarded to
    hummingbot-api's error_logs), a wrong mqtt_port (a disconnect every 5 s, the start given up after
    30 s and tried again, never heard), a healthy bot (heard, nothing of its own)."""
    tag = new_tag()
    sides = [real, standin]
    names = {}
    try:
        for side in sides:
            names[side.kind] = deploy_all(side, tag, RUNNING)
        fates = settled(sides, names, _running_done, 180)
        found = differences(fates, cuts={"mqtt": "MQTT Bridge failed to connect to the broker"})
        assert not found, "\n\n".join(found)
        assert all(f.running for f in fates["real"].values())
    finally:
        for side in sides:
            remove(side, names.get(side.kind, {}))
