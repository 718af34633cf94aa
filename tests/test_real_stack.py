"""The real lane's smoke test: the REAL hummingbot-api (both generations) with its real broker and
database, and a REAL Hummingbot bot (tests/realstack). It holds the seed incident against the
captures in tests/real_logs and shows a healthy bot heard over MQTT, so the tests that build on
this harness start from programs that behave as captured."""

from __future__ import annotations

import re

import pytest

from tests.realstack.images import GENERATIONS, ensure_real_images
from tests.realstack.stack import RealStack
from tests.stack import REPO, wait_until

pytestmark = pytest.mark.docker
CAPTURES = REPO / "tests" / "real_logs"
SEED_CAPTURE = {"legacy": "a_legacy_fdf35f5_deploy_missing_profile.log",
                "current": "b_current_ee7ce5c_deploy_missing_profile.log"}
# The captured request (neither log contains it; tests/real_logs/README.md gives it).
SEED_BODY = {"instance": "sharp-bot", "profile": "client_sharp", "script_config": "sharp.yml",
             "image": "hummingbot/hummingbot:latest"}
MISSING = "[Errno 2] No such file or directory: 'bots/credentials/client_sharp'"
ACCESS = '"POST /bot-orchestration/deploy-v2-script HTTP/1.1" 500 Internal Server Error'


@pytest.fixture(scope="session")
def real_images(docker_client) -> None:
    """Built by scripts/prepare; here only checked (a rebuild, if inputs changed, happens once)."""
    ensure_real_images(docker_client, log=lambda _msg: None)


def _normal(line: str) -> str:
    """A log line without what differs from run to run: the engine's timestamp, the record's
    asctime, the client's port."""
    line = re.sub(r"^\d{4}-\d\d-\d\dT[\d:.]+Z ", "", line)
    line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - ", "<asctime> - ", line)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)


def _seed_lines(lines: list[str]) -> list[str]:
    """What the seed incident prints: the missing profile's error, the 500 access line, and the
    traceback's frames in hummingbot-api's own code (same commit: same files, lines, code)."""
    keep, frame = [], False
    for line in map(_normal, lines):
        if frame:
            keep.append(line)
        frame = line.startswith('  File "/hummingbot-api/')
        if frame or MISSING in line or ACCESS in line:
            keep.append(line)
    return keep


@pytest.mark.parametrize("generation", GENERATIONS)
def test_real_seed_fails_as_captured(docker_client, real_images, generation):
    captured = _seed_lines((CAPTURES / SEED_CAPTURE[generation]).read_text().splitlines())
    assert any(MISSING in line for line in captured)  # the capture is the one meant
    with RealStack(docker_client, generation) as stack:
        deployed = stack.deploy(SEED_BODY["instance"], SEED_BODY["profile"], image=SEED_BODY["image"],
                                script_config=SEED_BODY["script_config"], headless=False)
        assert deployed.response.status_code == 500
        if generation == "legacy":  # uvicorn answers the exception that escaped
            assert deployed.response.text == "Internal Server Error"
        else:
            assert deployed.response.json() == {"detail": MISSING}
        assert deployed.name is None
        wait_until(lambda: len(_seed_lines(stack.lines("all"))) >= len(captured), 15, "the deploy's lines")
        # In order, except the access line: stdout's, the rest is stderr's, and the two interleave freely.
        live = _seed_lines(stack.lines("all"))
        assert [x for x in live if ACCESS not in x] == [x for x in captured if ACCESS not in x]
        assert [x for x in live if ACCESS in x] == [x for x in captured if ACCESS in x]
        # The failed deploy leaves its instance folder (current: the name with its timestamp).
        pattern = r"sharp-bot" if generation == "legacy" else r"sharp-bot-\d{8}-\d{6}"
        left = [p.name for p in (stack.bots / "instances").iterdir() if re.fullmatch(pattern, p.name)]
        assert len(left) == 1, left
        assert sorted(p.name for p in (stack.bots / "instances" / left[0]).iterdir()) == ["data", "logs"]
        assert stack.bot_containers() == []


def test_real_healthy_bot_heard_over_mqtt(docker_client, real_images):
    """A headless bot on an add-account'ed profile runs, and its MQTT heartbeat through the real
    broker makes hummingbot-api call it recently active (captured: after 10 to 20 s)."""
    with RealStack(docker_client, "current") as stack:
        assert stack.add_account("rb_acct").status_code == 201
        deployed = stack.deploy("rb-healthy", "rb_acct")
        assert deployed.response.status_code == 200, deployed.response.text
        assert re.fullmatch(r"rb-healthy-\d{8}-\d{6}", deployed.name or "")
        status = wait_until(lambda: (stack.status().get(deployed.name) or {}).get("recently_active"), 60,
                            f"{deployed.name} to be recently active", interval=1)
        assert status is True
        (bot,) = stack.bot_containers()
        bot.reload()
        assert bot.name == deployed.name and bot.status == "running", bot.status
        assert (stack.bot_logs(deployed.name) / "errors.log").read_text() == ""
