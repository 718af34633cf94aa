"""The deploy to retry, from evidence only, never from a guess.

Sources, in order: the request carried by the event itself (a recorded
exchange, or a body a build logged at INFO); the deploy recorder's record of
the failed request, correlated by route, profile or instance name, and time;
for the controllers route, the script config hummingbot-api generated under
bots/conf/scripts beside the instance folder it left behind (when bots/ is
mounted into the agent). Without any of them there is no intent: the incident
says how to finish with `hb-medic retry-deploy`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from agent.match import captures as capture_check
from agent.match.deploy import DEPLOY_NAME, FIELDS
from agent.match.model import Capture
from agent.names import DEFAULT_STACK, base_name
from agent.records import ANSWERED, Deploy
from agent.state import State

DEFAULT_IMAGE = "hummingbot/hummingbot:latest"  # what hummingbot-api deploys when no image is given
FILE_NAME = Capture(type="file", max_length=128)


def image_allowed(image: str, allowed: tuple[str, ...] = ()) -> bool:
    """The default image, or one on MEDIC_ALLOWED_IMAGES: an exact reference, or `repo:*` for
    any tag of that repository."""
    if image == DEFAULT_IMAGE or image in allowed:
        return True
    repo, sep, _tag = image.rpartition(":")
    return bool(sep) and "/" not in _tag and f"{repo}:*" in allowed


def check_body(route: str, body: object, allowed_images: tuple[str, ...] = ()) -> str | None:
    """None when the body is a deploy request hb-medic may re-send, else why not.

    hb-medic sends it with its own login and hummingbot-api runs it with the Docker socket,
    the profile's keys and CONFIG_PASSWORD: every field is checked, not only the names."""
    if route not in FIELDS:
        return f"unknown deploy route {route!r}"
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = set(body) - FIELDS[route]
    if unknown:
        return f"unknown fields for {route}: {', '.join(sorted(unknown))}"
    for name in ("instance_name", "credentials_profile"):
        value = body.get(name)
        if not isinstance(value, str) or not DEPLOY_NAME.match(value):
            return f"{name} must be letters, digits, _ or - (got {capture_check.shown(str(value))})"
    image = body.get("image")
    if image is not None and (not isinstance(image, str) or not image_allowed(image, allowed_images)):
        return (f"image {capture_check.shown(str(image))} is neither {DEFAULT_IMAGE} nor on"
                " MEDIC_ALLOWED_IMAGES (add it there to let hb-medic re-send deploys of it)")
    files = [("script", body.get("script")), ("script_config", body.get("script_config"))]
    if route == "deploy-v2-controllers":
        controllers = body.get("controllers_config")
        if not isinstance(controllers, list):
            return "controllers_config must be a list"
        files += [("controllers_config", c) for c in controllers]
    for name, value in files:
        if value is None and name != "controllers_config":
            continue
        reason = "is not text" if not isinstance(value, str) else capture_check.check(FILE_NAME, value)
        if reason:
            return f"{name} must be a plain file name: {capture_check.shown(str(value))} {reason}"
    if not isinstance(body.get("headless", False), bool):
        return "headless must be true or false"
    for name in ("max_global_drawdown_quote", "max_controller_drawdown_quote"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"{name} must be a number"
    return None


def from_recorder(store: State, *, profile: str | None, instance: str | None, at: float,
                  deploy_id: int | None = None, stack: str = DEFAULT_STACK) -> dict | None:
    """The failed request the recorder saw near `at` for that profile or instance: only one
    hummingbot-api accepted as authenticated (`Deploy.retryable`)."""
    if deploy_id is not None:
        d = store.deploys.get(deploy_id)
        if d is not None and not d.retryable:
            return None
    elif profile is None and instance is None:
        return None
    else:
        names = (instance, base_name(instance)) if instance else ()
        d = store.deploys.find(profile=profile, instances=names, since=at - 300, until=at + 60, stack=stack)
    if d is None or d.body() is None:
        return None
    return {"route": d.route, "body": d.body(), "raw": d.request_body, "source": "recorder",
            "deploy_id": d.id}


def from_bots_folder(bots: Path | None, *, profile: str | None, at: float) -> dict | None:
    """A controllers deploy left its generated script config and instance folder behind."""
    if bots is None or profile is None:
        return None
    scripts, instances = bots / "conf" / "scripts", bots / "instances"
    best = None
    for inst in instances.glob("*-????????-??????") if instances.is_dir() else []:
        cfg = scripts / f"{inst.name}.yml"
        if not cfg.is_file() or (inst / "conf" / "conf_client.yml").exists():
            continue  # not generated by the controllers route, or the deploy got further
        mtime = cfg.stat().st_mtime
        if abs(mtime - at) > 120 or (best is not None and mtime < best[0]):
            continue
        best = (mtime, inst.name, cfg)
    if best is None:
        return None
    try:
        content = yaml.safe_load(best[2].read_text()) or {}
    except yaml.YAMLError:
        return None
    if content.get("script_file_name") != "v2_with_controllers.py":
        return None
    body = {"instance_name": base_name(best[1]), "credentials_profile": profile,
            "controllers_config": [c[:-4] if c.endswith(".yml") else c
                                   for c in content.get("controllers_config", [])]}
    for key in ("max_global_drawdown_quote", "max_controller_drawdown_quote"):
        if content.get(key) is not None:
            body[key] = content[key]
    if check_body("deploy-v2-controllers", body):
        return None
    return {"route": "deploy-v2-controllers", "body": body, "raw": json.dumps(body),
            "source": "bots folder"}


def creator_of(store: State, name: str, created: float | None, stack: str = DEFAULT_STACK) -> Deploy | None:
    """The deploy that created a bot: the latest authenticated request of its name that
    hummingbot-api answered with success, shortly before the container was made."""
    at = created or time.time()
    found = [d for d in store.deploys.of(instances=(name, base_name(name)), since=at - 600, until=at + 60,
                                         stack=stack)
             if d.state == ANSWERED and not d.failed and d.authenticated and d.body() is not None]
    return found[-1] if found else None


def of_bot(store: State, deploy_id: int) -> dict | None:
    """The recorded request that created a bot that died: a redeploy re-sends it (a request that
    succeeded at hummingbot-api; the failure was inside the bot, which the agent saw die)."""
    d = store.deploys.get(deploy_id)
    if d is None or d.state != ANSWERED or d.failed or not d.authenticated or d.body() is None:
        return None
    return {"route": d.route, "body": d.body(), "raw": d.request_body, "source": "bot", "deploy_id": d.id}


def resolve(store: State, bots: Path | None, *, deploy: dict | None, captures: dict, at: float,
            wait: float = 0.0, stack: str = DEFAULT_STACK) -> dict | None:
    """The intent, trying each source; `wait` covers a record still being written.

    `deploy` is what the match carried: a recorded exchange (with its record id) or a
    body logged at INFO (source "log"), which the recorder's exact bytes take over.
    """
    if deploy and deploy.get("source") == "bot" and deploy.get("deploy_id") is not None:
        return of_bot(store, deploy["deploy_id"])
    if deploy and deploy.get("deploy_id") is not None:
        if store.deploys.get(deploy["deploy_id"]) is None:
            return deploy  # pruned since; the feed carried it from an answered, authenticated record
        return from_recorder(store, profile=None, instance=None, at=at, deploy_id=deploy["deploy_id"],
                             stack=stack)
    deadline = time.monotonic() + wait
    while True:
        found = from_recorder(store, profile=captures.get("profile"), instance=captures.get("instance"),
                              at=at, stack=stack)
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if found is None and deploy and deploy.get("body") is not None:
        found = {**deploy, "raw": json.dumps(deploy["body"]), "source": "log"}
    if found is None:
        found = from_bots_folder(bots, profile=captures.get("profile"), at=at)
    return found
