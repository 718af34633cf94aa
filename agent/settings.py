"""Settings from the environment (prefix ``MEDIC_``), secrets also from /run/secrets.

Validated once at start; a bad value stops the agent with a message naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agent.names import DEFAULT_HTTP_ADDR, HTTP_ADDR_PATTERN, IMAGE_PATTERN, SECRETS_DIR
from agent.stackconf import DEFAULT_STACK, StackConfig


def default_state_db() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hb-medic" / "state.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MEDIC_",
        secrets_dir=SECRETS_DIR if os.path.isdir(SECRETS_DIR) else None,
        extra="ignore",
    )

    containers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["hummingbot-api"],
        description="Container names to follow, comma separated.",
    )
    state_db: Path = Field(default_factory=default_state_db, description="SQLite state file.")
    rules_dir: Path | None = Field(
        None, description="Your own rules (*.yml) over the shipped ones; a shipped id is replaced.")
    catchup_window: float = Field(
        600.0, gt=0, description="Seconds of logs written while the agent was down that are replayed.")
    max_line_bytes: int = Field(64 * 1024, ge=1024, description="Longer log lines are cut, with a marker.")
    hummingbot_url: str = Field("http://127.0.0.1:8000", pattern=r"^https?://[^\s/]+(/\S*)?$",
                                description="hummingbot-api's base URL.")
    hummingbot_username: str = Field("admin", description="hummingbot-api's USERNAME.")
    hummingbot_password: SecretStr | None = Field(
        None, description="hummingbot-api's PASSWORD (env, or the secret file medic_hummingbot_password);"
                          " needed by the running agent.")
    mode: Literal["act", "observe", "ask"] = Field(
        "act", description="act: fix what a rule knows; observe: record and notify what would be done,"
                           " never act; ask: post the plan and act only once a listed person approves it"
                           " (enforce: the old name of act).")
    approval_ttl: float = Field(
        3600.0, gt=0, description="Seconds an incident waits for approval (ask) before it expires, doing"
                                  " nothing.")
    preflight: Literal["fix", "warn", "off"] | None = Field(
        None, description="What the recorder does with a deploy a check foresees failing: fix (what a rule"
                          " would fix after the failure, first; then forward), warn (forward and tell at"
                          " once), off. Default: fix when the mode acts, warn in observe and ask.")
    preflight_deadline: float = Field(
        2.0, gt=0, le=60, description="Longest a deploy waits for its preflight checks and fixes before it"
                                      " is forwarded as is (seconds).")
    action_budget: int = Field(
        100, ge=0, description="Most fix attempts in any hour, all incidents together (one attempt, whatever"
                               " its number of steps, is one unit): a circuit breaker.")
    stale_after: float = Field(
        900.0, gt=0, description="An event older than this many seconds is reported, not acted on.")
    credentials_dir: Path | None = Field(
        None, description="Exchange keys to provision: <dir>/<profile>/<connector>.json.")
    bots_dir: Path | None = Field(
        None, description="hummingbot-api's bots/ folder, mounted read-only: the bots' log files, and"
                          " deploys to rebuild.")
    gateway: Literal["auto", "present", "absent"] = Field(
        "auto", description="Whether the stack has a Hummingbot Gateway: auto (a container named gateway,"
                            " or of a `*/gateway:*` image, on the engine), present or absent.")
    bots: str = Field(
        "all", pattern=r"^[^\s]+$",
        description="Which bots hummingbot-api deployed to follow: all, off, or shell patterns of container"
                    " names, comma separated (grid-*,pmm-*).")
    bot_settle: float = Field(
        30.0, ge=0, le=3600, description="A redeployed or retried bot counts as fixed only when it still runs"
                                         " this many seconds later with no failure of its own.")
    probe_defaults: bool = Field(
        True, description="At start, try hummingbot-api's default login (admin/admin) and its broker without"
                          " a login, as anyone who reaches them could, and tell what lets them in.")
    bot_exit_wait: float = Field(
        10.0, gt=0, le=300, description="How long a failure a bot dies of waits for its death, to report"
                                        " both as one.")
    notify_urls: SecretStr | None = Field(
        None, description="apprise URLs, comma separated; `tag1,tag2=URL` routes by severity.")
    notify_config: Path | None = Field(None, description="An apprise config file (with tags).")
    chat: Annotated[list[Literal["telegram", "slack"]], NoDecode] = Field(
        default_factory=list,
        description="Interactive chats, comma separated (telegram, slack; off by default): one message per"
                    " incident, edited as it moves, with buttons and commands. Telegram's bot and chat are"
                    " those of the tgram:// notify URL.")
    chat_telegram_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Telegram user ids who may answer (buttons, commands), comma"
                                          " separated; nobody else may.")
    telegram_api_url: str = Field(
        "https://api.telegram.org", pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="The Telegram Bot API's base URL (a self-hosted Bot API server's).")
    slack_bot_token: SecretStr | None = Field(
        None, description="The Slack app's bot token (xoxb-...; env, or the secret file"
                          " medic_slack_bot_token): posts and edits the incidents' messages.")
    slack_app_token: SecretStr | None = Field(
        None, description="The Slack app's app-level token (xapp-..., scope connections:write; env, or the"
                          " secret file medic_slack_app_token): Socket Mode, which brings button presses and"
                          " commands without a public address.")
    slack_channel: str | None = Field(
        None, pattern=r"^[CGD][A-Z0-9]{2,}$",
        description="The Slack channel's id (C..., in the channel's details) the messages go to.")
    slack_api_url: str = Field("https://slack.com/api/", pattern=r"^https?://[^\s/]+(/\S*)?$",
                               description="Slack's Web API base URL.")
    chat_slack_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Slack user ids (U...) who may press the buttons and give commands, comma separated;"
                    " everyone else is told they are not allowed.")
    http_addr: str = Field(DEFAULT_HTTP_ADDR, pattern=HTTP_ADDR_PATTERN,
                           description="host:port for /healthz and /metrics.")
    log_format: Literal["text", "json"] = Field("text", description="The agent's own log lines.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="INFO: normal operation; WARNING: what needs a look; ERROR: what failed.")
    recorder_addr: str | None = Field(
        None, pattern=r"^[^\s:]*:\d{1,5}$",
        description="host:port for the deploy recorder to listen on (off unless set).")
    stop_timeout: float = Field(
        8.0, ge=1, le=600,
        description="On SIGTERM every thread ends within this many seconds, fixes saved where they stand;"
                    " keep it below the container's stop grace (Docker's default: 10 s).")
    grace_ms: float = Field(30.0, ge=0, le=1000,
                            description="How long a finished traceback waits for a chained one.")
    allowed_images: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Images a deploy retry may name besides hummingbot/hummingbot:latest, comma separated:"
                    " exact references, or repo:* for any tag.")
    unknown_digest: bool = Field(True, description="Send the daily digest of errors no rule knows.")
    unknown_digest_time: str = Field(
        "09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$",
        description="When the daily digest goes out: HH:MM in the agent's time zone (TZ).")
    unknown_burst_count: int = Field(
        20, ge=1, description="A new error no rule knows that repeats more than this many times...")
    unknown_burst_minutes: float = Field(
        10.0, gt=0, le=1440, description="...within this many minutes gets its own message at once.")

    stacks: list[dict] | None = Field(
        None, description="Several stacks from one agent (config file only): a list, each with name,"
                          " docker_host, tls, containers, hummingbot_url, hummingbot_username,"
                          " hummingbot_password_file, recorder_addr, bots_dir, credentials_dir, bots."
                          " Without it the settings above are the one stack `default`.")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: arguments, environment, secret files, then the optional config file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, file_secret_settings]
        config = os.environ.get("MEDIC_CONFIG_FILE")
        if config:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config))
        return tuple(sources)

    def preflight_mode(self) -> str:
        """MEDIC_PREFLIGHT, or its default for the mode: a preflight cannot wait for a person. In
        observe mode nothing is ever fixed, whatever MEDIC_PREFLIGHT says: it warns at most."""
        observe = str(self.mode) == "observe"
        if self.preflight is not None:
            return "warn" if observe and self.preflight == "fix" else self.preflight
        return "warn" if observe or str(self.mode) == "ask" else "fix"

    @field_validator("allowed_images", mode="before")
    @classmethod
    def _images(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for v in value:
                ref = v[:-2] + ":x" if isinstance(v, str) and v.endswith(":*") else v
                if not isinstance(ref, str) or not re.fullmatch(IMAGE_PATTERN, ref):
                    raise ValueError(f"{str(v)[:80]!r} is not an image reference (or repo:*)")
        return value

    @field_validator("chat", mode="before")
    @classmethod
    def _chat(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p for p in (x.strip().lower() for x in value.split(","))
                     if p and p not in ("off", "none")]
        return value

    @field_validator("chat_telegram_users", mode="before")
    @classmethod
    def _user_ids(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for v in value:
                if not isinstance(v, str | int) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(v)):
                    raise ValueError(f"{str(v)[:80]!r} is not a user id")
            return [str(v) for v in value]
        return value

    @field_validator("stacks", mode="before")
    @classmethod
    def _stacks(cls, value: object) -> object:
        """Each stack checked whole (files, certificates, secrets); an error names the stack and
        the field."""
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            raise ValueError("stacks: a list of stacks, each with at least a name")
        seen: dict[str, str] = {}
        for i, entry in enumerate(value):
            name = entry.get("name") if isinstance(entry, dict) else None
            who = f"stack {name!r}" if isinstance(name, str) and name else f"stack #{i + 1}"
            if not isinstance(entry, dict):
                raise ValueError(f"{who}: a mapping of fields (name, docker_host, ...)")
            if name == DEFAULT_STACK:
                continue  # checked with the environment's settings it falls back on (stack_list)
            try:
                StackConfig.model_validate(entry)
            except ValidationError as exc:
                raise ValueError(f"{who}: {_first_error(exc)}") from None
            for key in ("name", "docker_host", "recorder_addr"):
                if entry.get(key) is not None and (key, str(entry[key])) in seen:
                    raise ValueError(f"{who}: {key} {entry[key]} is also {seen[(key, str(entry[key]))]}'s")
                seen[(key, str(entry.get(key)))] = who
        return value

    def stack_list(self) -> list[StackConfig]:
        """The stacks this agent looks after: the config file's list, or the one stack `default`
        made of the settings above. A listed `default` takes what it does not say from them."""
        entries = self.stacks if self.stacks is not None else [{"name": DEFAULT_STACK}]
        out = []
        for entry in entries:
            try:
                out.append(self._stack(entry))
            except ValidationError as exc:
                where = os.environ.get("MEDIC_CONFIG_FILE") or "the config file"
                raise BadSettings({"stacks": f"bad stack in {where}: stack {entry.get('name')!r}:"
                                             f" {_first_error(exc)}"}) from None
        return out

    def _stack(self, entry: dict) -> StackConfig:
        if entry.get("name") == DEFAULT_STACK:
            base = {"name": DEFAULT_STACK, "containers": self.containers,
                    "hummingbot_url": self.hummingbot_url, "hummingbot_username": self.hummingbot_username,
                    "recorder_addr": self.recorder_addr, "bots_dir": self.bots_dir,
                    "credentials_dir": self.credentials_dir, "bots": self.bots, "gateway": self.gateway}
            stack = StackConfig.model_validate({**base, **entry})
            if stack.hummingbot_password is None and self.hummingbot_password is not None:
                stack = stack.model_copy(update={"hummingbot_password": self.hummingbot_password})
            return stack
        return StackConfig.model_validate({"bots": self.bots, **entry})

    @field_validator("mode", mode="before")
    @classmethod
    def _old_mode(cls, value: object) -> object:
        """`enforce`, the old name of act, still works."""
        return "act" if isinstance(value, str) and value.strip().lower() == "enforce" else value

    @field_validator("chat_slack_users", mode="before")
    @classmethod
    def _slack_users(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for v in value:
                if not isinstance(v, str) or not re.fullmatch(r"[UW][A-Z0-9]{2,}", v):
                    raise ValueError(f"{str(v)[:40]!r} is not a Slack user id (U..., in the person's profile:"
                                     " Copy member ID)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("containers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, list):
            names = [v for v in value if v]
            if not names:
                raise ValueError("at least one container name is needed")
            return names
        return value



def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if "[" not in str(p))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "needed"
    elif err["type"] == "extra_forbidden":
        msg = "not a field of a stack"
    return f"{where}: {msg}" if where and not msg.startswith(f"{where}:") else msg


class BadSettings(Exception):
    """Settings a command needs are missing or wrong; one line each, naming the setting."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("\n".join(problems.values()))
        self.problems = problems  # field name -> message


def problems(exc: ValidationError) -> dict[str, str]:
    """Field name -> a message naming the environment variable (and the secret file)."""
    out: dict[str, str] = {}
    for err in exc.errors():
        field_name = "_".join(str(p) for p in err["loc"]) or "settings"
        name = "MEDIC_" + field_name.upper()
        if field_name == "stacks":
            where = os.environ.get("MEDIC_CONFIG_FILE") or "the config file"
            message = f"bad stack in {where}: {err['msg'].removeprefix('Value error, ')}"
        elif err["type"] == "missing":
            message = (f"{name} is not set (environment, or the secret file "
                       f"{SECRETS_DIR}/medic_{field_name.lower()})")
        else:
            message = f"bad setting {name}: {err['msg']}"
        out.setdefault(str(err["loc"][0]) if err["loc"] else field_name, message)
    return out


def load(needs: Collection[str] | None = None) -> Settings:
    """Settings for a command that reads only `needs` (None: all of them).

    A bad value of a setting the command never reads does not stop it: that setting
    keeps its default. Raises BadSettings naming only the settings it needs.
    """
    try:
        return Settings()
    except ValidationError as exc:
        bad = problems(exc)
    except yaml.YAMLError as exc:  # every command reads the config file: none can go on
        where = os.environ.get("MEDIC_CONFIG_FILE") or "the config file"
        raise BadSettings({"config": f"{where} is not valid YAML: {' '.join(str(exc).split())}"}) from None
    needed = {k: v for k, v in bad.items() if needs is None or k in needs}
    if needed:
        raise BadSettings(needed)
    return Settings(**{name: Settings.model_fields[name].get_default(call_default_factory=True)
                       for name in bad})
