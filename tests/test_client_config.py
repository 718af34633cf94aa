"""hummingbot's conf_client.yml missing inside hummingbot-api's image (api-client-config-missing):
restore_client_config and its check, on the real engine, in a container of the real hummingbot-api
image (the real lane) and of the stand-in's; then the agent end to end, the stand-in printing
"Error writing configs" as hummingbot's save_to_yml does until the file is in place."""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from pathlib import Path

import docker
import pytest
from pydantic import ValidationError

from agent.actions import registry
from agent.actions.base import ActionContext, ActionError, NeedsHuman
from agent.actions.client_config import secret_in
from agent.hummingbot_api import HummingbotAPI
from agent.records import IncidentState
from agent.settings import Settings
from tests.images import STANDIN_IMAGE
from tests.realstack.images import ARCHIVES, VENDOR, api_image, ensure_real_images
from tests.stack import TEMPLATE, free_port, labels, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
ACTIONS = registry()
PURELIB = "/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])'"
MASTER = "hummingbot-api/bots/credentials/master_account/conf_client.yml"


def vendored_template(generation: str) -> bytes:
    """The template account's conf_client.yml as hummingbot-api's sources ship it."""
    with tarfile.open(VENDOR / "hummingbot-api" / ARCHIVES[generation]) as tar:
        return tar.extractfile(MASTER).read()


def run(action: str, ctx: ActionContext, **params) -> str:
    spec = ACTIONS[action]
    return spec.func(spec.params.model_validate(params), ctx)


class Api:
    """A container of a hummingbot-api image, idle (sleep), its bots folder mounted as upstream's
    compose mounts it, its site-packages conf folder removed (the fault of hummingbot-api#57)."""

    def __init__(self, client: docker.DockerClient, image: str, bots: Path, template: bytes | None,
                 user: str = "") -> None:
        self.template = template
        if template is not None:
            master = bots / "credentials" / "master_account"
            master.mkdir(parents=True)
            (master / "conf_client.yml").write_bytes(template)
        bots.mkdir(parents=True, exist_ok=True)
        self.container = client.containers.run(
            image, entrypoint=["sleep", "infinity"], user=user, name=f"medic-cc-{uuid.uuid4().hex[:8]}",
            detach=True, network_mode="none", labels=labels("client-config"),
            volumes={str(bots): {"bind": "/hummingbot-api/bots", "mode": "rw"}})
        self.site = self.sh(PURELIB)
        self.conf = f"{self.site}/conf"
        self.sh(f"rm -rf {self.conf}")
        assert not self.exists(self.conf)

    def sh(self, script: str) -> str:
        result = self.container.exec_run(["sh", "-c", script], user="root")
        assert result.exit_code == 0, result.output.decode()
        return result.output.decode().strip()

    def exists(self, path: str) -> bool:
        return self.container.exec_run(["test", "-e", path], user="root").exit_code == 0

    @property
    def name(self) -> str:
        return self.container.name


@pytest.fixture(params=["standin", "real"])
def image(request, docker_client) -> tuple[str, bytes]:
    """The image and the template its bots folder holds: the real hummingbot-api (current
    generation) with upstream's template, or the stand-in with the test bed's."""
    if request.param == "real":
        ensure_real_images(docker_client, log=lambda _msg: None)
        return api_image("current"), vendored_template("current")
    return STANDIN_IMAGE, TEMPLATE["conf_client.yml"].replace("{broker_port}", "1883").encode()


@pytest.fixture
def make_api(docker_client, tmp_path):
    made: list[Api] = []

    def make(image: str, template: bytes | None, user: str = "") -> Api:
        api = Api(docker_client, image, tmp_path / f"bots{len(made)}", template, user)
        made.append(api)
        return api

    yield make
    for api in made:
        api.container.remove(force=True)


@pytest.fixture
def ctx(docker_client):
    api = HummingbotAPI("http://127.0.0.1:9", "admin", "admin")  # these actions never call it
    yield ActionContext(docker=docker_client, api=api)
    api.close()


def test_restores_the_template_and_the_check_passes(image, make_api, ctx):
    api = make_api(*image)
    with pytest.raises(ActionError, match="is not in"):  # the check fails before the fix
        run("client_config_restored", ctx, container=api.name, conf_dir=api.conf)
    said = run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    assert said.startswith("copied the template account's conf_client.yml") and "owned by 0:0" in said
    assert api.sh(f"cat {api.conf}/conf_client.yml").encode() == api.template.strip()
    assert api.sh(f"stat -c '%u:%g %a' {api.conf} {api.conf}/conf_client.yml").splitlines() == \
        ["0:0 755", "0:0 644"]
    assert "is in place" in run("client_config_restored", ctx, container=api.name, conf_dir=api.conf)


def test_a_second_run_never_overwrites(image, make_api, ctx):
    api = make_api(*image)
    run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    api.sh(f"echo '# mine' >> {api.conf}/conf_client.yml")
    said = run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    assert "already exists" in said and "never overwritten" in said
    assert api.sh(f"tail -n 1 {api.conf}/conf_client.yml") == "# mine"
    with pytest.raises(ActionError, match="differs from the template"):
        run("client_config_restored", ctx, container=api.name, conf_dir=api.conf)


def test_owned_by_the_user_the_container_runs_as(make_api, ctx):
    api = make_api(STANDIN_IMAGE, b"instance_id: x\n", user="nobody")  # 65534:65534 in its passwd
    assert "owned by 65534:65534" in run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    assert api.sh(f"stat -c '%u:%g %a' {api.conf}/conf_client.yml") == "65534:65534 644"
    assert "is in place" in run("client_config_restored", ctx, container=api.name, conf_dir=api.conf)


def test_hostile_conf_dirs_are_refused_and_nothing_is_written(image, make_api, ctx):
    api = make_api(*image)
    py = api.site.split("/")[-2]  # python3.N
    for bad in ("/x/../../etc/site-packages/conf", f"{api.site}/../../{py}/site-packages/conf",
                f"/opt/venv/lib/{py}/./site-packages/conf", "/etc/site-packages/conf", "/etc/conf",
                f"{api.site}/hummingbot", f"{api.site}/conf/x", f"opt/venv/lib/{py}/site-packages/conf",
                f"{api.site}//conf", f"{api.conf};id"):
        with pytest.raises(ValidationError):
            ACTIONS["restore_client_config"].params.model_validate({"container": api.name, "conf_dir": bad})
    with pytest.raises(ValidationError):  # the container is a name, never a path or an option
        ACTIONS["restore_client_config"].params.model_validate({"container": "-x", "conf_dir": api.conf})
    # Links the engine would follow: a folder above conf_dir, site-packages itself, conf itself.
    api.sh(f"mkdir -p /root/x/lib/{py}/site-packages && ln -s /root/x /srv/py"
           f" && mkdir -p /srv/v/lib/{py} && ln -s /etc /srv/v/lib/{py}/site-packages")
    for bad in (f"/srv/py/lib/{py}/site-packages/conf", f"/srv/v/lib/{py}/site-packages/conf"):
        with pytest.raises(ActionError, match=r"is not a folder \(a symbolic link"):
            run("restore_client_config", ctx, container=api.name, conf_dir=bad)
    api.sh(f"ln -s /etc {api.conf}")
    with pytest.raises(ActionError, match=r"is not a folder \(a symbolic link"):
        run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    with pytest.raises(ActionError, match="/nowhere does not exist"):
        run("restore_client_config", ctx, container=api.name, conf_dir=f"/nowhere/lib/{py}/site-packages"
                                                                       "/conf")
    for written in (f"/root/x/lib/{py}/site-packages/conf", "/etc/conf", "/etc/conf_client.yml", "/nowhere"):
        assert not api.exists(written), written
    with pytest.raises(ActionError, match="does not exist"):
        run("restore_client_config", ctx, container="medic-no-such-container", conf_dir=api.conf)


def test_no_template_is_a_clear_error_and_nothing_is_written(image, make_api, ctx):
    """A person restores the template: no attempt again (NeedsHuman), the step in the message."""
    api = make_api(image[0], None)
    with pytest.raises(NeedsHuman, match=r"the template account's conf_client\.yml is not in .* nothing"
                                         r" to copy; nothing written"):
        run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    assert not api.exists(api.conf)


def test_a_template_holding_a_secret_is_not_copied(make_api, ctx):
    api = make_api(STANDIN_IMAGE, b"instance_id: x\nmqtt_bridge:\n  mqtt_password: hunter2\n")
    with pytest.raises(NeedsHuman, match="has a value for mqtt_password, which looks like a secret"):
        run("restore_client_config", ctx, container=api.name, conf_dir=api.conf)
    assert not api.exists(api.conf)


@pytest.mark.parametrize("generation", sorted(ARCHIVES))
def test_upstream_templates_hold_no_secret(generation):
    assert secret_in(vendored_template(generation)) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("binance_api_key: abc\n", "has a value for binance_api_key"),
    ("gateway:\n  gateway_passphrase: x\n", "has a value for gateway_passphrase"),
    ("wallet:\n  private_key: [1, 2]\n", "has a value for private_key"),
    ("kucoin: " + "7b2263727970746f22" * 8 + "\n", "has a value for kucoin that looks like an encrypted key"),
    ("note: '-----BEGIN EC PRIVATE KEY-----'\n", "looks like an encrypted key"),
    ('{"crypto": {"ciphertext": "00"}}\n', "has a value for crypto"),
    ("- a\n- b\n", "is not a settings file"),
    ("a: [\n", "is not a YAML file"),
])
def test_what_looks_like_a_secret(text, reason):
    assert reason in (secret_in(text.encode()) or "")


def test_mqtt_password_empty_and_comments_are_no_secret():
    assert secret_in(b"mqtt_bridge:\n  mqtt_password: ''\n# db_password: password\nglobal_token:\n"
                     b"  global_token_name: USDT\n"
                     b"instance_id: da1a30622aec40d9f1a9f1333c2b845f12ec456d\n") is None


# -- end to end ---------------------------------------------------------------------------------
def client_config_lines(stack) -> list[str]:
    return [line for line in stack.lines("stderr") if "Error writing configs" in line]


def test_the_agent_restores_it_and_the_errors_stop(make_stack, start_service, receiver, tmp_path):
    # The stand-in loads hummingbot's client settings every second, as an older hummingbot-api
    # does, and its venv has no site-packages/conf: the real record and traceback, every second.
    stack = make_stack(env={"STANDIN_CLIENT_CONFIG_INTERVAL": "1"})
    stack.wait_line("stderr", r"^FileNotFoundError: \[Errno 2\] No such file or directory: "
                              r"'/opt/venv/lib/python3\.\d+/site-packages/conf/conf_client\.yml'$")
    service = start_service(Settings(
        containers=[stack.prefix + "hummingbot-api"], state_db=tmp_path / "state.db",
        hummingbot_url=stack.url, catchup_window=120,
        rules_dir=prefixed_rules(stack.prefix, tmp_path / "rules"), recorder_addr=f"127.0.0.1:{free_port()}",
        bots_dir=stack.bots, notify_urls=receiver.url,
        preflight="off"))
    inc = wait_until(lambda: next((i for i in service.store.incidents.recent(50)
                                   if i.rule == "api-client-config-missing"
                                   and i.state in (IncidentState.RESOLVED, IncidentState.GAVE_UP)), None),
                     90, "the api-client-config-missing incident to end")
    trail = [(a["kind"], a["name"], a["ok"]) for a in service.store.incidents.audit_trail(inc.id)
             if a["kind"] in ("action", "verify")]
    assert inc.state == IncidentState.RESOLVED, trail
    assert inc.container == stack.api.name
    assert trail == [("action", "restore_client_config", True), ("verify", "client_config_restored", True)]
    conf_dir = inc.captures["conf_dir"]
    bits, _stat = stack.api.get_archive(f"{conf_dir}/conf_client.yml")
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tar:
        member = tar.getmembers()[0]
        assert tar.extractfile(member).read() == (stack.bots / "credentials" / "master_account"
                                                  / "conf_client.yml").read_bytes()
    assert (member.mode & 0o7777, member.uid, member.gid) == (0o644, 0, 0)
    # hummingbot-api's own load now finds the file: no more errors (it loads every second).
    settled = len(client_config_lines(stack))
    time.sleep(3)
    assert len(client_config_lines(stack)) == settled and stack.api_status() == "running"
    title = "Fixed: hummingbot-api has no conf_client.yml for its hummingbot library"
    fixed = wait_until(lambda: [m for m in list(receiver.accepted) if title in m.get("title", "")], 30,
                       "the fixed message")
    assert "lost when the container is re-created" in fixed[0]["message"]
    assert "restore_client_config" in fixed[0]["message"], fixed[0]["message"]
