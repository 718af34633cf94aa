"""The rule format: one pydantic model, the single source of truth for validation
and for the published JSON Schema (``hb-medic rules schema``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Level = Literal["DEBUG", "INFO", "NETWORK", "WARNING", "ERROR", "CRITICAL"]  # NETWORK: Hummingbot's own
Regex = Annotated[str, Field(description="Python regular expression (searched; anchor with ^ and $)")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str | int) else value


Role = Literal["hummingbot-api", "bot", "gateway", "sibling"]
Channel = Literal["stdout", "stderr", "console", "errors", "log", "recorder", "engine"]


class Where(Strict):
    """Which events a rule looks at."""

    containers: list[str] | None = Field(None, description="container names (default: every followed one)")
    labels: dict[str, str] | None = Field(None, description="container labels that must all be present")
    stream: Literal["any", "stdout", "stderr"] = "any"
    roles: list[Role] | None = Field(
        None, description="what the container is: hummingbot-api, bot (a bot it deployed), gateway (the "
                          "Hummingbot Gateway), sibling")
    gateway: Literal["present", "absent"] | None = Field(
        None, description="only on a stack that has a gateway (present) or has none (absent): a gateway "
                          "container on its engine, or its `gateway` setting; a replay without that "
                          "knowledge (rules test without --gateway) never matches such a rule")
    channels: list[Channel] | None = Field(
        None, description="where the lines come from: stdout, stderr, console (a bot's TTY), errors (a "
                          "bot's logs/errors.log), log (its logs_*.log), recorder, engine (life events)")

    _lists = field_validator("roles", "channels", mode="before")(lambda v: _listify(v))


class Frame(Strict):
    file: Regex | None = Field(None, description="regex searched in the frame's file path")
    function: str | None = Field(None, description="the frame's function name, exactly")


class Match(Strict):
    """All conditions given must hold. A rule lists one or more of these: any may match."""

    kind: Literal["any", "traceback", "line", "response", "exit"] = Field(
        "any", description="traceback, line, response (recorder), exit (a bot that died by itself)")
    exception: list[str] | None = Field(
        None, description="exception type(s): full dotted name or its last part")
    scope: Literal["any", "outermost"] = Field(
        "any", description="match the exception anywhere in the chain/group, or only the outermost")
    exception_message: Regex | None = Field(None, description="regex on the matched exception's message")
    frame: Frame | None = Field(None, description="a frame that must be in the traceback")
    logger: list[str] | None = Field(None, description="logger name(s) of the record, exactly")
    level: list[Level] | None = Field(None, description="level(s) of the record")
    message: Regex | None = Field(
        None, description="regex on the record's message (after its timestamp, logger and level)")
    line: Regex | None = Field(None, description="regex on the whole first line of the event")
    route: list[str] | None = Field(None, description="(recorder) deploy route name(s)")
    status: list[int] | None = Field(None, description="(recorder) HTTP status code(s)")
    request: dict[str, Regex] | None = Field(
        None, description="(recorder) regexes on fields of the deploy request body, with named groups")
    exit_code: list[int] | None = Field(None, description="(exit) the bot's exit code(s)")
    oom_killed: bool | None = Field(
        None, description="(exit) whether the kernel's out-of-memory killer ended it (engine event oom)")
    terminal: bool | None = Field(
        None, description="(exit) whether its container had a terminal (docker run -t, compose tty: true)")
    headless: bool | None = Field(
        None, description="(exit) whether the client ran without its prompt (--headless, HEADLESS_MODE=true)")
    channels: list[Channel] | None = Field(
        None, description="only events of these channels (within the rule's `where`): an alternative that"
                          " reads the agent's own engine lines beside others that read a log, so that no log"
                          " line, not even of a merged stream, can pose as it")
    sets: dict[str, str] = Field(
        default_factory=dict,
        description="captures this alternative gives when it matches, unless its own groups caught them: "
                    "fixed text of the rule's (the class of the failure, the advice for it)")

    _lists = field_validator("exception", "logger", "level", "route", "status", "exit_code", "channels",
                             mode="before")(lambda v: _listify(v))


class Capture(Strict):
    type: Literal["name", "profile", "file", "image", "path", "text"] = Field(
        "name", description="name: letters, digits, _ and - (1-64); profile: a name that is not a "
        "protected profile (master_account, in any case); file: a file name without directories; "
        "image: a Docker image reference; path: an absolute path of letters, digits, _ . + and -, "
        "without '.' or '..' parts (give it a pattern); text: free text, for messages only")
    pattern: Regex | None = Field(None, description="an extra regex the whole value must match")
    max_length: int = Field(64, ge=1, le=1024)
    case: Literal["lower", "upper"] | None = Field(
        None, description="keep the value in this case (one incident for Binance and binance; a setting "
                          "named as its environment variable)")
    shown: Literal["epoch_ms"] | None = Field(
        None, description="how a message shows the value (actions and the incident key get it as captured):"
                          " epoch_ms, milliseconds since 1970, as a UTC date and time and how long from now")


class Context(Strict):
    """A line near the event (same container, before it) that adds captures; or, with
    `traceback`, a traceback of the same container nearby (another channel: a bot's log file)."""

    message: Regex | None = Field(None, description="regex on the record's message, with named groups")
    traceback: Regex | None = Field(
        None, description="regex on the outermost exception (`Type: message`) of a traceback of the same"
                          " container within the window, with named groups")
    logger: list[str] | None = Field(None, description="the record's logger (of the line, or of the"
                                                          " record that carries the traceback)")
    level: list[Level] | None = None
    within: float = Field(30.0, gt=0, le=3600, description="seconds before the event")
    deploy: Literal["deploy-v2-script", "deploy-v2-controllers"] | None = Field(
        None, description="the group `config` holds this deploy request's body (pydantic repr)")
    correlate: dict[str, str] = Field(
        default_factory=dict,
        description="event capture -> field of the context's deploy body (or its capture) that must equal it")
    channels: list[Channel] | None = Field(
        None, description="where the context line may come from (default: the rule's own stream and "
                          "channels; a line from anywhere else is never taken, whatever it says)")

    _lists = field_validator("logger", "level", "channels", mode="before")(lambda v: _listify(v))

    @model_validator(mode="after")
    def _one_kind(self) -> Context:
        if (self.message is None) == (self.traceback is None):
            raise ValueError("a context needs exactly one of message or traceback")
        if self.traceback is not None and self.deploy is not None:
            raise ValueError("deploy is for message contexts")
        return self


class Threshold(Strict):
    count: int = Field(ge=2, description="matches needed...")
    window: float = Field(gt=0, description="...within this many seconds")


class IncidentPolicy(Strict):
    key: str = Field("", description="template of captures telling incidents of this rule apart")
    cooldown: float = Field(300, ge=0, description="seconds after an incident ends before acting again")
    max_attempts: int = Field(3, ge=1, le=20)
    backoff: float = Field(30, ge=0, description="seconds before a second attempt, doubled each time")
    quiet: float | None = Field(
        None, gt=0, le=86400,
        description="an ongoing condition: the incident stays open while its lines come and ends by itself"
                    " once none came for this many seconds (one message at its start, one at its end)")


RETRY_DEPLOY = "retry_deploy"  # the action that re-sends the failed deploy, after the verify steps


class ActionCall(Strict):
    action: str = Field(description="an action of the registry")
    params: dict[str, Any] = Field(default_factory=dict, description="values; strings may use {templates}")
    when: dict[str, Regex] = Field(
        default_factory=dict,
        description="run it only when these captures match these regexes (whole value): one rule, "
                    "several classes of a failure, each with its own fix")

    def applies(self, values: dict[str, Any]) -> bool:
        return all(re.fullmatch(rx, str(values.get(name) or "")) for name, rx in self.when.items())


class Notify(Strict):
    title: str
    text: str
    next_steps: str | None = Field(None, description="what a human still has to do")


class Rule(Strict):
    """One rule: where to look, what to recognise, what to do about it, whom to tell."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$", description="unique; the file is <id>.yml")
    description: str
    severity: Literal["critical", "error", "warning", "info"]
    source: Literal["log", "recorder", "any"] = Field(
        "log", description="log: followed lines; recorder: exchanges the recorder saw; any: both (its "
                           "kind: response alternatives see the recorder, `where` applies to the lines)")
    priority: int = Field(0, description="higher wins when several rules match one event")
    where: Where = Field(default_factory=Where)
    match: list[Match] = Field(min_length=1)
    captures: dict[str, Capture] = Field(default_factory=dict)
    context: list[Context] = Field(default_factory=list)
    threshold: Threshold | None = None
    incident: IncidentPolicy = Field(default_factory=IncidentPolicy)
    actions: list[ActionCall] = Field(default_factory=list)
    verify: list[ActionCall] = Field(default_factory=list)
    retry_deploy: bool = Field(
        False, description="re-send the failed deploy once the fix is verified: the same as listing the"
                           " retry_deploy action last")
    observe_only: bool = Field(False, description="report what would be done, never act")
    ask: bool = Field(
        False, description="its actions always wait for a person's approval (Fix now), whatever the mode "
                           "(MEDIC_MODE=ask asks for every rule); observe still only reports")
    fatal: bool = Field(
        False, description="(bot rules) the bot exits after this: its death is waited for "
                           "(MEDIC_BOT_EXIT_WAIT seconds) and reported with it; {fate} says how it ended")
    notify: Notify

    def calls(self, values: dict[str, Any], group: str = "actions") -> list[ActionCall]:
        """The actions (or verify steps) that apply to a match or incident with these values."""
        return [c for c in getattr(self, group) if c.applies(values)]

    @model_validator(mode="after")
    def _retry_as_action(self) -> Rule:
        """`retry_deploy: true` (the shipped rules' and older rules' form) is the action listed
        last; either form sets both, so code asks `retry_deploy` and runs `actions`."""
        listed = any(c.action == RETRY_DEPLOY for c in self.actions)
        if self.retry_deploy and not listed:
            self.actions.append(ActionCall(action=RETRY_DEPLOY))
        self.retry_deploy = self.retry_deploy or listed
        return self

    def acts(self, values: dict[str, Any]) -> bool:
        return bool(self.calls(values) or self.calls(values, "verify") or self.retry_deploy)

    @field_validator("match", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


def schema() -> dict:
    return Rule.model_json_schema()
