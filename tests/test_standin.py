"""The hummingbot-api stand-in against what the real program prints and does.

Each test makes real HTTP calls to the stand-in in its container and checks the
exact lines, the stream each came on, status codes, bodies and disk effects,
as described in the project's notes on hummingbot-api.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.images import BOT_IMAGE

pytestmark = pytest.mark.docker

TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
STAMP = r"\d{8}-\d{6}"
ACCESS = r'INFO:     127\.0\.0\.1:\d+ - "{method} {path} HTTP/1\.1" {status}'
LOGFIRE = r"\d\d:\d\d:\d\d\.\d\d\d {method} {path}"


def record(logger: str, level: str, message: str) -> str:
    """Regex of one application log record line, exactly."""
    return rf"^{TS} - {re.escape(logger)} - {level} - {re.escape(message)}$"


def only(lines: list[str], pattern: str) -> list[str]:
    return [line for line in lines if re.search(pattern, line)]


# --- start-up -----------------------------------------------------------------

def test_current_start_prints_security_warning_on_stderr_and_no_info(stack):
    err, out = stack.lines("stderr"), stack.lines("stdout")
    warning = only(err, r" - root - CRITICAL - SECURITY WARNING: insecure default credentials")
    assert len(warning) == 1
    assert "in use for: USERNAME, PASSWORD, CONFIG_PASSWORD. Anyone who can reach" in warning[0]
    assert re.match(rf"^{TS} - root - CRITICAL - ", warning[0])
    assert "INFO:     Started server process [1]" in err
    assert "INFO:     Application startup complete." in err
    assert not only(out, "SECURITY WARNING|Started server process")
    # A real deployment prints no application INFO records.
    assert not only(err + out, r" - INFO - ")


def test_custom_credentials_silence_the_warning_and_info_switch_works(make_stack):
    stack = make_stack(env={"USERNAME": "u", "PASSWORD": "p", "CONFIG_PASSWORD": "c"},
                       log_info=True)
    err = stack.lines("stderr")
    assert not only(err, "SECURITY WARNING")
    assert only(err, record("database.connection", "INFO", "Database initialized"))
    assert stack.http("GET", "/accounts/", auth=("u", "p")).status_code == 200


def test_legacy_start_has_no_security_warning(make_stack):
    stack = make_stack(generation="legacy")
    assert not only(stack.lines("all"), "SECURITY WARNING")
    assert "INFO:     Application startup complete." in stack.lines("stderr")


# --- auth and request lines ---------------------------------------------------------

def test_auth_and_every_request_logged_twice_on_stdout(stack):
    assert stack.http("GET", "/", auth=None).status_code == 200
    missing = stack.http("GET", "/accounts/", auth=None)
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Not authenticated"}
    wrong = stack.http("GET", "/accounts/", auth=("admin", "nope"))
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Incorrect username or password"}

    out = stack.wait_line("stdout", r'"GET /accounts/ HTTP/1.1" 401', count=2)
    lines = stack.lines("stdout")
    for i, line in enumerate(lines):
        if re.fullmatch(ACCESS.format(method="GET", path="/", status="200 OK"), line):
            assert re.fullmatch(LOGFIRE.format(method="GET", path="/"), lines[i - 1])
            break
    else:
        raise AssertionError(f"no access line for GET /: {lines}")
    assert len(out) == 2
    assert all(re.fullmatch(ACCESS.format(method="GET", path="/accounts/",
                                          status="401 Unauthorized"), x) for x in out)
    # HTTPException details are not logged anywhere.
    assert not only(stack.lines("all"), "Incorrect username|Not authenticated")


def test_query_string_in_logfire_line(stack):
    assert stack.http("POST", "/accounts/add-account", params={"account_name": "half_made"}
                      ).status_code == 201
    stack.wait_line("stdout", r"add-account\?account_name=half_made HTTP/1.1\" 201 Created")
    assert only(stack.lines("stdout"),
                r"^\d\d:\d\d:\d\d\.\d{3} POST /accounts/add-account \? account_name='half_made'$")


# --- the seed incident: missing credentials profile ----------------------------------

def test_current_missing_profile_one_error_line_json_500(stack):
    name = stack.unique("sharp-bot")
    resp = stack.deploy(instance_name=name, credentials_profile="client_sharp",
                        script_config="sharp.yml")
    assert resp.status_code == 500
    assert resp.json() == {
        "detail": "[Errno 2] No such file or directory: 'bots/credentials/client_sharp'"}
    stack.wait_line("stdout", r'"POST /bot-orchestration/deploy-v2-script HTTP/1.1" 500')
    err = stack.lines("stderr")
    errors = only(err, r" - ERROR - ")
    assert len(errors) == 1
    assert re.match(record("root", "ERROR", "Error deploying V2 script: [Errno 2] No such file "
                           "or directory: 'bots/credentials/client_sharp'"), errors[0])
    assert not only(err, "Traceback")
    assert only(stack.lines("stdout"), LOGFIRE.format(method="POST",
                                                      path="/bot-orchestration/deploy-v2-script"))
    # The request body is logged nowhere.
    assert not only(stack.lines("all"), f"credentials_profile|sharp.yml|Creating hummingbot|{name}")
    # The instance folders are left behind, timestamped.
    left = [p.name for p in (stack.bots / "instances").iterdir()]
    assert len(left) == 1 and re.fullmatch(rf"{name}-{STAMP}", left[0])
    assert sorted(p.name for p in (stack.bots / "instances" / left[0]).iterdir()) == [
        "data", "logs"]


def test_legacy_missing_profile_traceback_plain_500(make_stack):
    stack = make_stack(generation="legacy")
    name = stack.unique("sharp-bot")
    resp = stack.deploy(instance_name=name, credentials_profile="client_sharp",
                        script_config="sharp.yml")
    assert resp.status_code == 500
    assert resp.text == "Internal Server Error"
    assert resp.headers["content-type"].startswith("text/plain")
    last = "FileNotFoundError: [Errno 2] No such file or directory: 'bots/credentials/client_sharp'"
    stack.wait_line("stderr", re.escape(last))
    err = stack.lines("stderr")
    start = err.index("ERROR:    Exception in ASGI application")
    block = err[start:]
    assert block[1] == "Traceback (most recent call last):"
    assert block[block.index(last) - 1].strip().startswith("^")  # 3.11+ caret under scandir
    text = "\n".join(block)
    assert 'File "/hummingbot-api/routers/bot_orchestration.py"' in text
    assert re.search(r'File "/hummingbot-api/services/docker_service.py", line \d+, '
                     r"in create_hummingbot_instance\n    shutil.copytree\(", text)
    assert re.search(r'shutil.py", line \d+, in copytree', text)
    assert not only(err, r" - ERROR - ")
    # Access line on stdout; no application INFO record with the body.
    assert only(stack.lines("stdout"), ACCESS.format(
        method="POST", path="/bot-orchestration/deploy-v2-script",
        status="500 Internal Server Error"))
    assert not only(stack.lines("all"), "Creating hummingbot instance")
    assert [p.name for p in (stack.bots / "instances").iterdir()] == [name]


def test_legacy_info_build_logs_the_body(make_stack):
    stack = make_stack(generation="legacy", log_info=True)
    name = stack.unique("sharp-bot")
    stack.deploy(instance_name=name, credentials_profile="client_sharp", script_config="sharp.yml")
    line = stack.wait_line("stderr", "Creating hummingbot instance")[0]
    assert re.match(record("root", "INFO", (
        f"Creating hummingbot instance with config: instance_name='{name}' "
        f"credentials_profile='client_sharp' image='{BOT_IMAGE}' script=None "
        "script_config='sharp.yml' headless=False")), line)


# --- accounts -------------------------------------------------------------------------

def test_add_account_then_deploy_starts_a_running_bot(stack):
    profile = stack.unique("client")
    resp = stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    assert (resp.status_code, resp.json()) == (201, {"message": "Account added successfully."})
    made = stack.bots / "credentials" / profile
    assert sorted(p.name for p in made.iterdir()) == [
        ".password_verification", "conf_client.yml", "conf_fee_overrides.yml", "connectors",
        "hummingbot_logs.yml"]
    assert list((made / "connectors").iterdir()) == []
    again = stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    assert (again.status_code, again.json()) == (400, {"detail": "Account already exists."})
    assert profile in stack.http("GET", "/accounts/").json()
    assert stack.http("GET", f"/accounts/{profile}/credentials").json() == []

    (stack.bots / "conf" / "scripts" / "pmm.yml").write_text("script_file_name: pmm.py\n")
    (stack.bots / "scripts" / "pmm.py").write_text("markets = {}\n")
    name = stack.unique("bot")
    resp = stack.deploy(instance_name=name, credentials_profile=profile, script_config="pmm.yml",
                        headless=True)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    unique = body["unique_instance_name"]
    assert re.fullmatch(rf"{name}-{STAMP}", unique)
    assert body == {"success": True, "message": f"Instance {unique} created successfully.",
                    "unique_instance_name": unique}

    bot = stack.bot(unique)
    assert bot.status in ("created", "running")
    attrs = bot.attrs
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert attrs["Config"]["Tty"] is True and attrs["Config"]["OpenStdin"] is True
    assert "SCRIPT_CONFIG=pmm.yml" in attrs["Config"]["Env"]
    assert attrs["HostConfig"]["LogConfig"]["Type"] == "json-file"
    binds = {b.split(":")[1] for b in attrs["HostConfig"]["Binds"]}
    assert binds == {f"/home/hummingbot/{p}" for p in (
        "conf", "conf/connectors", "conf/scripts", "conf/controllers", "data", "logs",
        "scripts", "controllers")}
    conf = yaml.safe_load((stack.bots / "instances" / unique / "conf" / "conf_client.yml")
                          .read_text())
    assert conf["instance_id"] == unique
    assert (stack.bots / "instances" / unique / "conf" / "scripts" / "pmm.yml").is_file()

    def bot_says():
        return "MQTT Bridge connected with success." in bot.logs().decode()

    from tests.stack import wait_until
    wait_until(bot_says, 30, "the bot's bridge to the broker")
    assert "- root - Starting V2 script strategy: pmm\r\n" in bot.logs().decode()  # a TTY
    bot.reload()
    assert bot.status == "running"
    # As captured: "stopped" (nothing trades), and recently_active once its heartbeat is heard.
    entry = wait_until(lambda: stack.http("GET", "/bot-orchestration/status").json()["data"].get(unique),
                       10, "the bot in the status")
    assert (entry["status"], entry["source"]) == ("stopped", "docker")
    wait_until(lambda: stack.http("GET", f"/bot-orchestration/{unique}/status").json()["data"]
               .get("recently_active"), 20, "its heartbeat")
    mqtt = stack.http("GET", "/bot-orchestration/mqtt").json()["data"]
    assert mqtt["mqtt_connected"] and unique in mqtt["discovered_bots"] and unique in mqtt["active_bots"]
    bot.kill()
    wait_until(lambda: unique not in stack.http("GET", "/bot-orchestration/status").json()["data"], 10,
               "a dead bot to drop out")
    assert stack.http("GET", f"/bot-orchestration/{unique}/status").json() == {
        "status": "success", "data": {"status": "not_found", "error": f"Bot {unique} not found"}}
    # Success is silent on stderr.
    assert not only(stack.lines("stderr"), r" - (ERROR|WARNING) - ")


def test_missing_script_config_warns_and_goes_on(stack):
    profile = stack.unique("client")
    stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    resp = stack.deploy(instance_name=stack.unique("bot"), credentials_profile=profile,
                        script_config="nope.yml")
    assert resp.json()["success"] is True
    line = stack.wait_line("stderr", "Script config file")[0]
    assert re.match(record("services.docker_service", "WARNING",
                           "Script config file nope.yml not found in bots/conf/scripts"), line)


@pytest.mark.parametrize("generation", ["current", "legacy"])
def test_half_made_profile_fails_on_conf_client(make_stack, generation):
    stack = make_stack(generation=generation)
    (stack.bots / "credentials" / "half_made").mkdir()
    assert "half_made" in stack.http("GET", "/accounts/").json()
    creds = stack.http("GET", "/accounts/half_made/credentials")
    assert (creds.status_code, creds.json()) == (
        404, {"detail": "Directory 'credentials/half_made/connectors' not found"})
    exists = stack.http("POST", "/accounts/add-account", params={"account_name": "half_made"})
    assert (exists.status_code, exists.json()) == (400, {"detail": "Account already exists."})

    name = stack.unique("half-bot")
    resp = stack.deploy(instance_name=name, credentials_profile="half_made")
    assert resp.status_code == 500
    if generation == "current":
        detail = resp.json()["detail"]
        assert re.fullmatch(rf"YAML file 'instances/{name}-{STAMP}/conf/conf_client.yml' not found",
                            detail)
        line = stack.wait_line("stderr", "Error deploying V2 script")[0]
        assert re.match(rf"^{TS} - root - ERROR - Error deploying V2 script: "
                        + re.escape(detail) + "$", line)
    else:
        last = f"FileNotFoundError: YAML file 'instances/{name}/conf/conf_client.yml' not found"
        stack.wait_line("stderr", re.escape(last))
        assert "ERROR:    Exception in ASGI application" in stack.lines("stderr")

    # The repair: delete-account then add-account, after which the deploy works.
    assert stack.http("POST", "/accounts/delete-account",
                      params={"account_name": "half_made"}).json() == {
        "message": "Account deleted successfully."}
    assert stack.http("POST", "/accounts/add-account",
                      params={"account_name": "half_made"}).status_code == 201
    ok = stack.deploy(instance_name=stack.unique("half-bot"), credentials_profile="half_made")
    assert ok.status_code == 200 and ok.json()["success"] is True


def test_account_errors_and_add_credential(stack):
    master = stack.http("POST", "/accounts/delete-account", params={"account_name": "master_account"})
    assert (master.status_code, master.json()) == (400, {"detail": "Cannot delete master account."})
    gone = stack.http("POST", "/accounts/delete-account", params={"account_name": "ghost"})
    assert (gone.status_code, gone.json()) == (404, {"detail": "Folder 'ghost' not found in 'credentials'"})
    bad = stack.http("POST", "/accounts/add-account", params={"account_name": "../etc"})
    assert bad.status_code == 400
    assert bad.json()["detail"] == ("Invalid account name: '../etc'. Only letters, numbers, "
                                    "underscores and hyphens are allowed.")

    profile = stack.unique("client")
    stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    secret = "canary-api-secret-123"
    resp = stack.http("POST", f"/accounts/add-credential/{profile}/bitmart",
                      json={"bitmart_api_key": "k", "bitmart_secret_key": secret})
    assert (resp.status_code, resp.json()) == (
        201, {"message": "Connector credentials added successfully."})
    assert stack.http("GET", f"/accounts/{profile}/credentials").json() == ["bitmart"]
    stored = (stack.bots / "credentials" / profile / "connectors" / "bitmart.yml").read_text()
    assert secret not in stored
    assert not only(stack.lines("all"), secret)


def test_add_credential_failures_are_one_error_line_and_config_map_of_an_unknown_connector_is_a_500(
        stack):
    """As the real current generation: every add-credential failure is one ERROR record (no
    traceback) and a 400 with str(e); an unknown connector's config map is an unhandled
    KeyError (500, uvicorn's traceback)."""
    profile = stack.unique("client")
    stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    resp = stack.http("POST", f"/accounts/add-credential/{profile}/rc_no_such_exchange", json={"k": "v"})
    assert (resp.status_code, resp.json()) == (400, {"detail": "'rc_no_such_exchange'"})
    stack.wait_line("stderr", record("services.accounts_service", "ERROR",
                                     f"Error adding connector credentials for account {profile}:"
                                     " 'rc_no_such_exchange'"))
    resp = stack.http("POST", "/accounts/add-credential/nobody/binance", json={"k": "v"})
    assert resp.json() == {"detail": "Directory 'credentials/nobody/connectors' not found"}
    stack.wait_line("stderr", record("services.accounts_service", "ERROR",
                                     "Error adding connector credentials for account nobody: Directory"
                                     " 'credentials/nobody/connectors' not found"))
    known = stack.http("GET", "/connectors/binance/config-map")
    assert known.json() == {"binance_api_key": {"type": "SecretStr", "required": True},
                            "binance_api_secret": {"type": "SecretStr", "required": True}}
    unknown = stack.http("GET", "/connectors/rc_no_such_exchange/config-map")
    assert (unknown.status_code, unknown.text) == (500, "Internal Server Error")
    stack.wait_line("stderr", "^KeyError: 'rc_no_such_exchange'$")
    err = stack.lines("stderr")
    start = err.index("ERROR:    Exception in ASGI application")
    assert err[start + 1] == "Traceback (most recent call last):"
    assert "in get_connector_config_keys" in "\n".join(err[start:])


# --- validation -------------------------------------------------------------------------

def test_invalid_name_fails_as_the_real_one_with_warning_line(stack):
    """The real current generation logs the 422's warning, then cannot encode the name validator's
    ValueError into its answer: 500 text/plain and a chained traceback on stderr (captured in
    tests/real_logs/more/current-invalid-name-api.log)."""
    resp = stack.deploy(instance_name="ok", credentials_profile="../etc")
    assert resp.status_code == 500
    assert resp.text == "Internal Server Error" and resp.headers["content-type"].startswith("text/plain")
    line = stack.wait_line("stderr", "Validation error")[0]
    assert re.match(record("root", "WARNING", (
        "Validation error on POST /bot-orchestration/deploy-v2-script: body -> credentials_profile: "
        "Value error, Invalid credentials_profile: '../etc'. Only letters, numbers, underscores "
        "and hyphens are allowed.")), line)
    stack.wait_line("stderr", "TypeError: Object of type ValueError is not JSON serializable")
    err = stack.lines("stderr")
    print("\n".join(err[-140:]))
    assert "ERROR:    Exception in ASGI application" in err
    assert not (stack.bots / "instances").exists() or not list((stack.bots / "instances").iterdir())


# --- controllers route ------------------------------------------------------------------------

def test_deploy_v2_controllers_writes_script_config(stack):
    profile = stack.unique("client")
    stack.http("POST", "/accounts/add-account", params={"account_name": profile})
    (stack.bots / "conf" / "controllers" / "pmm_a.yml").write_text("controller_name: pmm\n")
    name = stack.unique("ctl")
    resp = stack.deploy("deploy-v2-controllers", instance_name=name, credentials_profile=profile,
                        controllers_config=["pmm_a", "missing_b.yml"],
                        max_global_drawdown_quote=100)
    body = resp.json()
    assert resp.status_code == 200 and body["success"] is True, body
    unique = body["unique_instance_name"]
    assert body["script_config_generated"] == f"{unique}.yml"
    written = yaml.safe_load((stack.bots / "conf" / "scripts" / f"{unique}.yml").read_text())
    assert written == {"script_file_name": "v2_with_controllers.py",
                       "controllers_config": ["pmm_a.yml", "missing_b.yml"],
                       "max_global_drawdown_quote": 100.0}
    line = stack.wait_line("stderr", "Controller config file")[0]
    assert re.match(record("services.docker_service", "WARNING",
                           "Controller config file missing_b.yml not found in bots/conf/controllers"),
                    line)
    assert (stack.bots / "instances" / unique / "conf" / "controllers" / "pmm_a.yml").is_file()
    assert f"SCRIPT_CONFIG={unique}.yml" in stack.bot(unique).attrs["Config"]["Env"]


def test_controllers_missing_profile_current_line(stack):
    resp = stack.deploy("deploy-v2-controllers", instance_name=stack.unique("ctl"),
                        credentials_profile="client_sharp", controllers_config=["x"])
    assert resp.status_code == 500
    line = stack.wait_line("stderr", "Error deploying V2 controllers")[0]
    assert re.match(record("root", "ERROR", "Error deploying V2 controllers: [Errno 2] No such "
                           "file or directory: 'bots/credentials/client_sharp'"), line)


# --- Docker-level failures: HTTP 200 success false, no log line ---------------------------

def after_start(stack) -> list[str]:
    """stderr lines printed after start-up (the security warning is before)."""
    err = stack.lines("stderr")
    return err[err.index("INFO:     Application startup complete.") + 1:]


def _silent(stack) -> None:
    stack.wait_line("stdout", r'"POST /bot-orchestration/deploy-v2-script HTTP/1.1" 200 OK')
    assert not only(after_start(stack), r" - (ERROR|WARNING|CRITICAL) - |Traceback")


def test_name_conflict_is_200_success_false(make_stack):
    stack = make_stack(generation="legacy", env={"USERNAME": "u", "PASSWORD": "p"})
    auth = ("u", "p")
    stack.http("POST", "/accounts/add-account", params={"account_name": "prof"}, auth=auth)
    name = stack.unique("dup")
    first = stack.http("POST", "/bot-orchestration/deploy-v2-script", auth=auth,
                       json={"instance_name": name, "credentials_profile": "prof"})
    assert first.json()["success"] is True
    second = stack.http("POST", "/bot-orchestration/deploy-v2-script", auth=auth,
                        json={"instance_name": name, "credentials_profile": "prof"})
    assert second.status_code == 200
    msg = second.json()["message"]
    assert second.json()["success"] is False
    assert re.match(r"409 Client Error for http\+docker://localhost/v[\d.]+/containers/create"
                    rf"\?name={name}: Conflict", msg), msg
    assert f'The container name "/{name}" is already in use' in msg
    _silent(stack)


def test_image_unavailable_is_200_success_false(stack):
    stack.http("POST", "/accounts/add-account", params={"account_name": "prof"})
    # A registry on a closed loopback port: the pull fails without leaving the machine.
    resp = stack.deploy(instance_name=stack.unique("img"), credentials_profile="prof",
                        image="127.0.0.1:9/nope/hummingbot:latest")
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is False
    assert re.match(r"\d{3} (Client|Server) Error for http\+docker://localhost/", body["message"])
    assert "127.0.0.1:9" in body["message"]
    _silent(stack)


def test_empty_config_password_is_200_success_false(make_stack):
    stack = make_stack(env={"CONFIG_PASSWORD": ""})
    stack.http("POST", "/accounts/add-account", params={"account_name": "prof"})
    (stack.bots / "conf" / "scripts" / "s.yml").write_text("x: 1\n")
    resp = stack.deploy(instance_name=stack.unique("np"), credentials_profile="prof",
                        script_config="s.yml")
    assert resp.status_code == 200
    assert resp.json() == {"success": False, "message":
                           "Password not provided. We cannot start the bot without a password."}
    _silent(stack)


# --- siblings: broker, database, docker socket ----------------------------------------------

MQTT = "MQTT disconnected during message iteration: {}. Reconnecting..."


def test_broker_outage_lines_then_silent_recovery(stack):
    assert not only(stack.lines("all"), "MQTT")
    stack.broker_container.stop(timeout=2)
    stack.wait_line("stderr", "Connection refused", count=2)
    stack.broker_container.start()
    err = stack.lines("stderr")
    mqtt = only(err, "MQTT")
    assert re.match(record("utils.mqtt_manager", "ERROR",
                           MQTT.format('"Disconnected during message iteration"')), mqtt[0])
    for line in mqtt[1:]:
        assert re.match(record("utils.mqtt_manager", "ERROR",
                               MQTT.format('"[Errno 111] Connection refused"')), line)
    # Reconnects by itself, silently: no new MQTT line once the broker is back.
    import time
    time.sleep(3)
    settled = len(only(stack.lines("stderr"), "MQTT"))
    time.sleep(2.5)
    assert len(only(stack.lines("stderr"), "MQTT")) == settled


def test_broker_down_at_start(make_stack):
    stack = make_stack(broker=False)
    stack.wait_line("stderr", "MQTT connection not established")
    err = stack.lines("stderr")
    assert only(err, record("utils.mqtt_manager", "WARNING",
                            "MQTT connection not established after 5 seconds"))
    assert only(err, re.escape(MQTT.format('"[Errno 111] Connection refused"')))


def test_database_port_closed_fails_start_with_exit_3(make_stack):
    stack = make_stack(postgres=False, wait_ready=False)
    assert stack.wait_exit() == 3
    err = stack.lines("stderr")
    assert only(err, record("database.connection", "ERROR", (
        f"Failed to create database tables: [Errno 111] Connect call failed "
        f"('127.0.0.1', {stack.db_port})")))
    assert "ERROR:    Traceback (most recent call last):" in err
    assert (f"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', "
            f"{stack.db_port})") in err
    assert err[-1] == "ERROR:    Application startup failed. Exiting."


def test_database_wrong_password_three_exception_chain(make_stack):
    stack = make_stack(database_password="wrong", wait_ready=False)
    assert stack.wait_exit() == 3
    err = stack.lines("stderr")
    msg = ('password authentication failed for user "hbot"')
    background = "(Background on this error at: https://sqlalche.me/e/21/dbapi)"
    head = only(err, "Failed to create database tables")
    assert len(head) == 1
    assert re.match(rf"^{TS} - database.connection - ERROR - Failed to create database tables: "
                    r"\(sqlalchemy\.dialects\.postgresql\.asyncpg\.", head[0])
    assert err[err.index(head[0]) + 1] == background
    exceptions = [line for line in err if re.match(r"^[a-z_.]+\.[A-Za-z_.]+: ", line)]
    assert exceptions[0] == f"asyncpg.exceptions.InvalidPasswordError: {msg}"
    assert exceptions[1].startswith(
        "sqlalchemy.dialects.postgresql.asyncpg.AsyncAdapt_asyncpg_dbapi."
        "InvalidAuthorizationSpecificationError: <class 'asyncpg.exceptions.InvalidPasswordError'>")
    assert exceptions[2].startswith("sqlalchemy.exc.DBAPIError: (")
    assert exceptions[2].endswith(msg)
    assert err[err.index(exceptions[2]) + 1] == background
    assert err.count("The above exception was the direct cause of the following exception:") == 2
    assert err[-1] == "ERROR:    Application startup failed. Exiting."


def test_docker_socket_missing_four_exception_chain(make_stack):
    stack = make_stack(mount_socket=False, wait_ready=False)
    assert stack.wait_exit() == 3
    err = stack.lines("stderr")
    assert err[-1] == "ERROR:    Application startup failed. Exiting."
    assert ("docker.errors.DockerException: Error while fetching server API version: "
            "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))") in err
    joins = [line for line in err if line in (
        "During handling of the above exception, another exception occurred:",
        "The above exception was the direct cause of the following exception:")]
    assert len(joins) == 3  # four exceptions in the chain
    assert "FileNotFoundError: [Errno 2] No such file or directory" in err


# --- background noise -------------------------------------------------------------------------

def test_rate_oracle_noise_chained_traceback(make_stack):
    stack = make_stack(noise_interval=1)
    stack.wait_line("stderr", "ClientConnectorDNSError", count=2)
    err = stack.lines("stderr")
    assert only(err, record("hummingbot.connector.time_synchronizer", "WARNING",
                            "Could not refresh server time. Check network connection."))
    head = only(err, r"rate_source_base - ERROR - Unexpected error while retrieving rates from")[0]
    block = err[err.index(head):]
    assert block[1] == "Traceback (most recent call last):"
    assert "socket.gaierror: [Errno -3] Temporary failure in name resolution" in block
    assert "The above exception was the direct cause of the following exception:" in block
    assert any(re.fullmatch(r"aiohttp\.client_exceptions\.ClientConnectorDNSError: Cannot connect "
                            r"to host api\.\w+\.\w+:443 ssl:default \[Temporary failure in name "
                            r"resolution\]", line) for line in block)
    assert not only(stack.lines("stdout"), "Traceback|ERROR")


# --- the gateway routes with no gateway (the shared captures' gateway g4) ---------------------------

def test_current_gateway_routes_without_a_gateway_answer_as_captured(stack):
    assert stack.http("GET", "/gateway/status").json() == {
        "running": False, "container_id": None, "image": None, "created_at": None, "port": None}
    for method, path in (("GET", "/gateway/logs"), ("POST", "/gateway/stop")):
        r = stack.http(method, path)
        assert (r.status_code, r.json()) == (404, {"detail": "Gateway container not found"}), path
    paths = ["/gateway/connectors", "/gateway/chains", "/gateway/networks", "/gateway/apiKeys",
             "/accounts/gateway/wallets"]
    for path in paths:
        r = stack.http("GET", path)
        assert r.status_code == 503 and r.content == b'{"detail":"Gateway service is not available"}', path
        assert r.headers["content-type"] == "application/json"
    # The login first, as on every router: an unauthenticated request never reaches the handler.
    assert stack.http("GET", "/gateway/connectors", auth=None).status_code == 401
    assert stack.http("GET", "/gateway/connectors", auth=("admin", "nope")).status_code == 401
    stack.wait_line("stdout", r'"GET /accounts/gateway/wallets HTTP/1.1" 503 Service Unavailable')
    for path in paths:
        assert only(stack.lines("stdout"), ACCESS.format(method="GET", path=re.escape(path),
                                                         status="503 Service Unavailable")), path
    # The 503s add no application log line.
    assert not only(stack.lines("all"), "not available")
