"""`hb-medic preflight` end to end against the stand-in of both generations (the engine's own
answers: images, containers, hummingbot-api's environment), each prediction then held against
what hummingbot-api really answers to the same deploy; and the seed deploy on the real current
hummingbot-api."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.preflight.checks import Context, DeployRequest, run
from tests.stack import REPO
from tests.unit.test_preflight import assert_golden

pytestmark = pytest.mark.docker

GENERATIONS = ("legacy", "current")


def preflight(env: dict[str, str], body: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`hb-medic preflight` as a person runs it, with these settings only."""
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    return subprocess.run([sys.executable, "-m", "agent", "preflight", str(path), *args],
                          capture_output=True, text=True, env={**environ, "PYTHONPATH": str(REPO), **env},
                          cwd=tmp_path, timeout=120)


def settings_of(stack, image: str, **more: str) -> dict[str, str]:
    return {"MEDIC_BOTS_DIR": str(stack.bots), "MEDIC_CONTAINERS": stack.api.name,
            "MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_HUMMINGBOT_PASSWORD": "admin",
            "MEDIC_ALLOWED_IMAGES": image, **more}


def crosses(out: subprocess.CompletedProcess) -> list[str]:
    return [line for line in out.stdout.splitlines() if line.startswith("✗")]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_seed_deploy_is_foretold_and_passes_once_the_profile_exists(make_stack, tmp_path, generation):
    from tests.images import BOT_IMAGE

    stack = make_stack(generation=generation, broker=False)
    env = settings_of(stack, BOT_IMAGE)
    profile, instance = stack.unique("client_sharp").replace("-", "_"), stack.unique("sharp-bot")
    body = {"instance_name": instance, "credentials_profile": profile, "image": BOT_IMAGE}
    args = ("--generation", generation)  # said explicitly from here on
    out = preflight(env, body, tmp_path)  # the generation told by hummingbot-api itself
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"hummingbot-api: {generation} generation (told by its /openapi.json)", out.stdout
    assert crosses(out) == [f"✗ credentials profile {profile} does not exist"], out.stdout
    at = lines.index(f"✗ credentials profile {profile} does not exist")
    assert lines[at + 1] == (f"    fix: hb-medic adds profile {profile} through add-account (and the"
                             " exchange keys placed for it)")
    assert lines[at + 2] == ("    foretells: credentials-profile-missing (fixed before the deploy is"
                             " forwarded)")
    for seen in (f"✓ image {BOT_IMAGE} is on the engine", f"✓ {stack.api.name}: CONFIG_PASSWORD not set"
                 " (hummingbot-api's default)"):
        assert seen in lines, out.stdout
    if generation == "legacy":
        assert f"✓ no container is named {instance}" in lines
    assert not [x for x in lines if x.startswith("?")], out.stdout  # every check could run
    # What was foretold is what hummingbot-api answers.
    assert stack.deploy(**body).status_code == 500
    assert stack.http("POST", "/accounts/add-account", params={"account_name": profile}).status_code == 201
    out = preflight(env, body, tmp_path, *args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not crosses(out) and "✓ credentials profile" in out.stdout
    answer = stack.deploy(**body)
    assert answer.status_code == 200 and answer.json()["success"], answer.text
    # Legacy names the container as sent: the same deploy again is Docker's 409, and preflight says so.
    out = preflight(env, body, tmp_path, *args)
    if generation == "current":
        assert out.returncode == 0, out.stdout
        return
    out = preflight(env, body, tmp_path, *args, "--json")
    conflict = [x for x in map(json.loads, out.stdout.splitlines()) if x["check"] == "name-conflict"]
    assert conflict == [{
        "check": "name-conflict", "outcome": "failed", "ok": False, "skipped": False,
        "says": f"a container named {instance} already exists: Docker will refuse the name (409)",
        "rule": "deploy-name-conflict", "captures": {"instance": instance}, "fixable": False,
        "fix": conflict[0]["fix"]}]
    answer = stack.deploy(**body)
    assert answer.json()["success"] is False and "409" in answer.json()["message"]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_what_only_the_engine_knows_image_and_config_password(make_stack, tmp_path, generation):
    stack = make_stack(generation=generation, broker=False, env={"CONFIG_PASSWORD": ""})
    profile = stack.unique("acct").replace("-", "_")
    assert stack.http("POST", "/accounts/add-account", params={"account_name": profile}).status_code == 201
    (stack.bots / "conf" / "scripts" / "pf.yml").write_text("script_file_name: v2_with_controllers.py\n")
    missing = "medic-test/no-such-image:1"
    body = {"instance_name": stack.unique("pf"), "credentials_profile": profile, "image": missing,
            "script_config": "pf.yml", "script": "v2_with_controllers.py"}
    out = preflight(settings_of(stack, missing), body, tmp_path, "--generation", generation)
    assert out.returncode == 1
    assert crosses(out) == [
        f"✗ {stack.api.name} has an empty CONFIG_PASSWORD: it will answer \"Password not provided\"",
        f"✗ image {missing} is not on the engine: the deploy will fail unless Docker can pull it"], out.stdout
    for rule in ("config-password-missing", "deploy-image-unavailable"):
        assert f"foretells: {rule}" in out.stdout
    assert "CONFIG_PASSWORD=" not in out.stdout + out.stderr
    answer = stack.deploy(**body)  # hummingbot-api refuses it for the password first, as foretold
    assert answer.json() == {"success": False,
                             "message": "Password not provided. We cannot start the bot without a password."}


def test_the_engine_checks_in_process_name_shipped_rules(make_stack, docker_client):
    """The golden check of tests/unit/test_preflight.py, on the findings only an engine gives."""
    stack = make_stack(generation="legacy", broker=False, env={"CONFIG_PASSWORD": ""})
    taken = stack.api.name  # a container name that exists
    ctx = Context(bots_dir=stack.bots, engine=docker_client, api_container=stack.api.name,
                  allowed_images=("medic-test/nothing:*",))
    findings = []
    for body in ({"instance_name": taken, "credentials_profile": "x", "image": "medic-test/nothing:1",
                  "script": "s.py"},
                 {"instance_name": "y", "credentials_profile": "x"}):
        findings += run(DeployRequest("deploy-v2-script", body, "legacy"), ctx)[0]
    assert {f.rule for f in findings} >= {"deploy-name-conflict", "deploy-image-unavailable",
                                          "config-password-missing", "config-password-empty"}
    assert_golden(findings)


def test_an_engine_that_does_not_answer_is_said_never_guessed(make_stack, tmp_path):
    from tests.images import BOT_IMAGE

    stack = make_stack(broker=False)
    body = {"instance_name": "pf-bot", "credentials_profile": "master_account", "image": BOT_IMAGE}
    env = {**settings_of(stack, BOT_IMAGE), "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    out = preflight(env, body, tmp_path)
    lines = out.stdout.splitlines()
    said = f"? not checked: no Docker engine (unix://{tmp_path}/no.sock does not answer: "
    gone = [x for x in lines if x.startswith(said)]
    assert len(gone) == 2, out.stdout  # CONFIG_PASSWORD and the image
    assert out.returncode == 0, out.stdout + out.stderr  # nothing failed: what could not be checked is said


def test_an_engine_that_goes_away_is_said_by_each_check_that_asks_it(tmp_path):
    """A client made while the engine answered, asked once it no longer does (docker-py with a fixed
    API version does not call the engine until asked)."""
    import docker

    gone = docker.DockerClient(base_url=f"unix://{tmp_path}/gone.sock", version="1.41", timeout=5)
    ctx = Context(engine=gone, api_container="hummingbot-api")
    body = {"instance_name": "a", "credentials_profile": "b", "script": "s.py"}
    found = {f.check: f for f in run(DeployRequest("deploy-v2-script", body, "legacy"), ctx)[0]}
    for check in ("config-password", "image", "name-conflict"):
        assert found[check].skipped and found[check].ok, found[check]
    assert "environment cannot be read" in found["config-password"].says
    assert "the engine did not answer" in found["image"].says


def test_a_stack_that_is_not_there(make_stack, tmp_path):
    stack = make_stack(broker=False)
    body = {"instance_name": "a", "credentials_profile": "b"}
    out = preflight(settings_of(stack, "x/y:1"), body, tmp_path, "--stack", "eu-1")
    assert out.returncode == 2
    assert out.stderr.strip() == "hb-medic: no stack eu-1 (stacks: default): name one with --stack"


# -- the real hummingbot-api ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_stack(docker_client):
    from tests.realstack.images import ensure_real_images
    from tests.realstack.stack import RealStack

    ensure_real_images(docker_client, log=lambda _msg: None)
    with RealStack(docker_client, "current") as stack:
        yield stack


def test_real_preflight_foretells_the_seed_and_passes_a_good_deploy(real_stack, tmp_path):
    from tests.realstack.images import BOT_IMAGE

    stack = real_stack
    env = {"MEDIC_BOTS_DIR": str(stack.bots), "MEDIC_CONTAINERS": stack.api_name,
           "MEDIC_HUMMINGBOT_URL": stack.url, "MEDIC_HUMMINGBOT_PASSWORD": "admin",
           "MEDIC_ALLOWED_IMAGES": BOT_IMAGE}
    # The seed deploy as captured, with this machine's bot image.
    seed = {"instance_name": "sharp-bot", "credentials_profile": "client_sharp", "image": BOT_IMAGE}
    out = preflight(env, seed, tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert crosses(out) == ["✗ credentials profile client_sharp does not exist"], out.stdout
    assert "foretells: credentials-profile-missing (fixed before the deploy is forwarded)" in out.stdout
    assert f"✓ {stack.api_name}: CONFIG_PASSWORD set" in out.stdout
    seed_answer = stack.http("POST", "/bot-orchestration/deploy-v2-script", json=seed)
    assert seed_answer.status_code == 500  # as foretold
    # A good one: the profile made as a user makes it, a script config, the image on the engine.
    assert stack.add_account("pf_good").status_code == 201
    assert stack.write_script_config("pf_good").status_code in (200, 201)
    good = {"instance_name": "pf-good", "credentials_profile": "pf_good", "image": BOT_IMAGE,
            "script_config": "pf_good.yml", "headless": True}
    out = preflight(env, good, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not crosses(out), out.stdout
    assert not [x for x in out.stdout.splitlines() if x.startswith("?")], out.stdout
    for seen in ("✓ credentials profile pf_good has a usable .password_verification",
                 "✓ script config pf_good.yml is in bots/conf/scripts",
                 "✓ script v2_with_controllers.py is in bots/scripts",
                 f"✓ image {BOT_IMAGE} is on the engine"):
        assert seen in out.stdout, out.stdout
    answer = stack.http("POST", "/bot-orchestration/deploy-v2-script", json=good)
    assert answer.status_code == 200 and answer.json()["success"], answer.text


@pytest.mark.parametrize("generation", GENERATIONS)
def test_the_controllers_route_read_from_stdin(make_stack, tmp_path, generation):
    """A controller config the body lists is missing: foretold, then hummingbot-api's own warning."""
    from tests.images import BOT_IMAGE

    stack = make_stack(generation=generation, broker=False)
    profile = stack.unique("acct").replace("-", "_")
    assert stack.http("POST", "/accounts/add-account", params={"account_name": profile}).status_code == 201
    (stack.bots / "conf" / "controllers" / "here.yml").write_text("controller_name: pmm_simple\n")
    gone = stack.unique("gone")
    body = {"instance_name": stack.unique("ctl"), "credentials_profile": profile, "image": BOT_IMAGE,
            "controllers_config": ["here", gone]}
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_")}
    env = {**environ, "PYTHONPATH": str(REPO), **settings_of(stack, BOT_IMAGE)}
    out = subprocess.run([sys.executable, "-m", "agent", "preflight", "-", "--route", "deploy-v2-controllers",
                          "--generation", generation], input=json.dumps(body), capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert crosses(out) == [f"✗ controller config not in bots/conf/controllers: {gone}.yml"], out.stdout
    assert "foretells: controller-config-missing" in out.stdout
    assert "✓ script v2_with_controllers.py is in bots/scripts" in out.stdout
    assert stack.deploy("deploy-v2-controllers", **body).json()["success"]
    stack.wait_line("stderr", rf"Controller config file {gone}\.yml not found in bots/conf/controllers")
