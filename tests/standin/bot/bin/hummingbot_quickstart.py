#!/usr/bin/env python
"""A stand-in for a Hummingbot bot as hummingbot-api deploys it.

It behaves like the real client in the captures (real-logs/bots): the same lines in
the same places (errors.log before logging is set up, then the console as
`HH:MM:SS - logger - message` and logs/logs_*.log in the full format with the
tracebacks), the same exit codes, chosen by the files the deploy gave it, as
the real one chooses:

- conf/.password_verification missing: the FileNotFoundError traceback, exit 1; damaged (not the
  hex of a key file's JSON): the real binascii.Error, UnicodeDecodeError or JSONDecodeError
  traceback, exit 1; made with another password (by the stand-in's store_password_verification,
  or saying `standin-sha256:<hash>` of it): `Invalid password.`, exit 0. These tracebacks end in
  the real frames: the stand-in's `hummingbot` package (beside bin/, as the real one) has the real
  modules' names, functions and lines where a traceback shows them;
- conf/conf_client.yml not valid (mqtt_port not a number): ConfigValidationError, exit 1;
- a connector's keys (conf/connectors/<c>.yml) made with another password: MAC mismatch, exit 1;
- SCRIPT_CONFIG missing from conf/scripts, its script missing from scripts/, a script with a
  syntax error or a missing module, or one trading on a live connector without keys: the
  strategy does not start (exit 1; a legacy bot, without HEADLESS_MODE, draws its text UI and
  keeps running);
- otherwise it runs: a script's on_tick() each second, whether the script is a real V2 one (a
  StrategyV2Base subclass and its config class) or module-level functions; an exception is the
  clock's error, with the real traceback's frames (the compiled clock's and c_tick's, then tick());
- the MQTT bridge to the broker in conf_client.yml: a heartbeat hummingbot-api hears and every log
  record (hummingbot-api's error_logs and general_logs). A start that does not connect within 30 s
  is given up and tried again 10 s later, with the real lines; a lost connection is tried again
  every 5 s;
- a script's connector whose exchange is cut off (test bed: named in scripts/.standin-offline) is
  not ready: the strategy says so on every tick instead of ticking;
- its memory is its script's: one that allocates is killed by the kernel under a memory limit
  (bash, PID 1, then says "Killed"); a logs folder it cannot write stops bash's redirect before
  python starts (as the real image's command does).

The real client takes about 7 s to start; this one takes about 1 s.
"""

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import os
import queue
import socket
import sys
import threading
import time
import types

import yaml

HOME = "/home/hummingbot"
sys.path.insert(0, HOME)  # the package beside bin/, as the real path_util puts it on the path

from hummingbot.client.config.config_crypt import ETHKeyFileSecretManger  # noqa: E402
from hummingbot.client.runner import bootstrap_application  # noqa: E402
from hummingbot.core.clock import Clock  # noqa: E402
from hummingbot.strategy.strategy_v2_base import StrategyV2Base, StrategyV2ConfigBase  # noqa: E402

CONF = f"{HOME}/conf"
LOGS = f"{HOME}/logs"
START_DELAY = float(os.environ.get("STANDIN_START_DELAY", "1.0"))
HEARTBEAT = 5.0
RECONNECT = 5.0
START_TIMEOUT = 30.0  # the MQTT bridge's start, then a new start after AUTOSTART_RETRY
AUTOSTART_RETRY = 10.0
OUTBOX = 1000  # log records queued for hummingbot-api while the bridge is not connected
MAX_FORWARDED = 32 * 1024  # characters of a forwarded record (one line to the stand-in broker)
FILE_FORMAT = "%(asctime)s - %(process)d - %(name)s - %(levelname)s - %(message)s"
TUI = ("\x1b[?1049h\x1b[H\x1b[0;38;5;248;48;5;16mVersion: standin\x1b[0;38;5;231;48;5;233m"
       "Strategy: {strategy} > Ctrl+T\r\x1b[79C \x1b[0m\r")


class ConfigValidationError(Exception):
    pass


ConfigValidationError.__module__ = "hummingbot.client.config.config_helpers"


class ConsoleFormatter(logging.Formatter):
    """The console's short form: HH:MM:SS - last part of the logger - message; no tracebacks."""

    def format(self, record):
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{when} - {record.name.rsplit('.', 1)[-1]} - {record.getMessage()}"
        if record.exc_info:
            text += " (See log file for stack trace dump)"
        return text


def load_client_config_map_from_file():
    with open(f"{CONF}/conf_client.yml") as f:
        data = yaml.safe_load(f) or {}
    errors = []
    mqtt = data.get("mqtt_bridge") or {}
    port = mqtt.get("mqtt_port", 1883)
    if not isinstance(port, int):
        errors.append("mqtt_bridge.mqtt_port - Input should be a valid integer, unable to parse string as an"
                      " integer")
    if errors:
        all_errors = "\n".join(errors)
        raise ConfigValidationError(f"There are errors in the client global configuration (\n{all_errors})")
    return data


def _decode_keyfile_json_v3(sealed, password):
    if sealed.get("password_sha256") not in (None, hashlib.sha256(password.encode()).hexdigest()):
        raise ValueError("MAC mismatch")


def decrypt_all(password):
    folder = f"{CONF}/connectors"
    keys = {}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".yml") and not name.startswith((".", "_")):
            with open(f"{folder}/{name}") as f:
                sealed = yaml.safe_load(f) or {}
            _decode_keyfile_json_v3(sealed, password)
            keys[name[:-4]] = sealed
    return keys


class MQTTLogHandler(logging.Handler):
    """Every record, as the real bridge publishes it on the bot's log topic (the message with its
    traceback, level and logger): queued from the start of a bridge until it connects, and lost
    with a start that timed out (the real one's queue goes with its gateway)."""

    def __init__(self):
        super().__init__()
        self.outbox = queue.Queue(maxsize=OUTBOX)

    def emit(self, record):
        entry = {"timestamp": time.time(), "msg": self.format(record)[:MAX_FORWARDED], "level_no": record.levelno,
                 "level_name": record.levelname, "logger_name": record.name}
        with contextlib.suppress(queue.Full):
            self.outbox.put_nowait(entry)


class Bot:
    def __init__(self, client, keys, headless):
        self.client = client
        self.keys = keys
        self.headless = headless
        self.instance = str(client.get("instance_id") or os.environ.get("HOSTNAME", "bot"))
        self.root = logging.getLogger()
        self.console = None
        self.file = None

    # -- logging, as the client sets it up (console short form, file in full) -----------------
    def log_to(self, file_name):
        if self.file is None:  # the client's own logging replaces the early one on stderr
            for handler in list(self.root.handlers):
                self.root.removeHandler(handler)
        else:
            self.root.removeHandler(self.file)
        self.file = logging.FileHandler(f"{LOGS}/{file_name}")
        self.file.setFormatter(logging.Formatter(FILE_FORMAT))
        self.root.addHandler(self.file)
        if self.headless and self.console is None:
            self.console = logging.StreamHandler(sys.stdout)
            self.console.setFormatter(ConsoleFormatter())
            self.root.addHandler(self.console)
        self.root.setLevel(logging.INFO)

    def load_strategy(self, conf):
        """The script config's strategy, or None when it cannot start (the real lines)."""
        root = logging.getLogger()
        core = logging.getLogger("hummingbot.core.trading_core")
        path = f"{CONF}/scripts/{conf}"
        if not os.path.isfile(path):
            root.error(f"V2 config file not found: {path}")
            return None
        with open(path) as f:
            fields = yaml.safe_load(f) or {}
        script_file = fields.get("script_file_name", "")
        strategy = script_file[:-3] if script_file.endswith(".py") else script_file
        root.info(f"Starting V2 script strategy: {strategy}")
        try:
            module = self.import_script(strategy)
            for connector in getattr(module, "markets", {}) or {}:
                if not connector.endswith("_paper_trade") and connector not in self.keys:
                    raise ValueError(f"API keys required for live trading connector '{connector}'. "
                                     f"Either provide API keys or use a paper trade connector.")
            made = self.make_strategy(module, fields)
        except Exception as e:
            core.error(f"Failed to start strategy {strategy}: {e}")
            root.error("Failed to start strategy")
            return None
        name = conf[:-4] if conf.endswith(".yml") else conf
        core.info(f"Markets recorder initialized with database: {name}")
        core.info("Creating the clock with tick size: 1.0")
        core.info("Clock started successfully")
        core.info(f"'{strategy}' strategy execution started.")
        core.info(f"Strategy {strategy} started successfully")
        made.ready_check = self.readiness(module)
        return made

    @staticmethod
    def import_script(strategy):
        path = f"{HOME}/scripts/{strategy}.py"
        if not os.path.isfile(path):
            raise ValueError(f"Unknown strategy: {strategy}")
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        module = types.ModuleType(f"scripts.{strategy}")
        module.__file__ = path
        module.logger = logging.getLogger("hummingbot.strategy.strategy_v2_base")
        exec(code, module.__dict__)
        return module

    @staticmethod
    def make_strategy(module, fields):
        """As the real loader: the script's StrategyV2Base subclass, made with its config class
        from the script config's fields. A script of module-level functions (the test bed's short
        form) runs as the base class with its on_tick."""
        classes = [m for m in vars(module).values() if inspect.isclass(m)]
        strategy_class = next((c for c in classes if issubclass(c, StrategyV2Base) and c is not StrategyV2Base),
                              None)
        if strategy_class is None:
            strategy = StrategyV2Base()
            if callable(getattr(module, "on_tick", None)):
                strategy.on_tick = module.on_tick
            return strategy
        config_class = next((c for c in classes if issubclass(c, StrategyV2ConfigBase)
                             and c is not StrategyV2ConfigBase), StrategyV2ConfigBase)
        return strategy_class({}, config_class(**fields))

    # -- running ------------------------------------------------------------------------------
    def mqtt(self):
        """The bridge's start as the real client's: "Connecting MQTT Bridge...", a connection tried
        every RECONNECT s, given up after START_TIMEOUT s and started again AUTOSTART_RETRY s later."""
        app = logging.getLogger("hummingbot.client.hummingbot_application")
        bridge = self.client.get("mqtt_bridge") or {}
        address = (bridge.get("mqtt_host", "localhost"), int(bridge.get("mqtt_port", 1883)))
        while True:
            started = time.monotonic()
            app.info("Connecting MQTT Bridge...")
            forward = MQTTLogHandler()
            self.root.addHandler(forward)
            connection = self.connect(app, address, deadline=started + START_TIMEOUT)
            if connection is not None:
                app.info("MQTT Bridge connected with success.")
                self.bridge(app, address, connection, forward.outbox)
            app.error(f"Failed to connect MQTT Bridge: Connection timed out after {START_TIMEOUT} seconds. "
                      f"Retrying in {AUTOSTART_RETRY} seconds.")
            app.info(f"MQTT Bridge failed to connect to the broker, retrying in {AUTOSTART_RETRY} seconds.")
            self.root.removeHandler(forward)
            time.sleep(AUTOSTART_RETRY)

    @staticmethod
    def connect(app, address, deadline=None):
        """A connection to the broker, tried every RECONNECT s (until the deadline, when given)."""
        while True:
            try:
                return socket.create_connection(address, timeout=5)
            except OSError as e:
                text = f"[Errno {e.errno}] {os.strerror(e.errno)}" if e.errno else str(e)
                app.warning(f"MQTT bridge disconnected: {text}. Reconnecting in {RECONNECT}s.")
            if deadline is not None and time.monotonic() + RECONNECT > deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                return None
            time.sleep(RECONNECT)

    def bridge(self, app, address, connection, outbox):
        """Connected: a heartbeat every HEARTBEAT s and each log record as it comes; a lost
        connection is tried again every RECONNECT s (no timeout once started, as the real one)."""
        while True:
            try:
                with connection:
                    threading.Thread(target=self.drain, args=(connection,), daemon=True).start()
                    beat = 0.0
                    while True:
                        if time.monotonic() >= beat:
                            connection.sendall(f"HB {self.instance}\n".encode())
                            beat = time.monotonic() + HEARTBEAT
                        try:
                            entry = outbox.get(timeout=max(0.0, beat - time.monotonic()))
                        except queue.Empty:
                            continue
                        connection.sendall(f"LOG {self.instance} {json.dumps(entry)}\n".encode())
            except OSError as e:
                text = f"[Errno {e.errno}] {os.strerror(e.errno)}" if e.errno else str(e)
                app.warning(f"MQTT bridge disconnected: {text}. Reconnecting in {RECONNECT}s.")
                time.sleep(RECONNECT)
                connection = self.connect(app, address)

    @staticmethod
    def drain(connection):
        """What the broker passes on from others is read and dropped (the real client reads its
        subscriptions), so the broker never queues it."""
        try:
            while connection.recv(65536):
                pass
        except OSError:
            pass

    def readiness(self, module):
        """The strategy's ready_check: counts the clock's ticks for not_ready."""
        ticks = [0]

        def ready():
            ticks[0] += 1
            return not self.not_ready(module, ticks[0])

        return ready

    @staticmethod
    def not_ready(module, n):
        """Connectors whose exchange is out of reach are not ready: the strategy waits, and says so
        on every tick; the time synchroniser fails every 10 s (test bed: scripts/.standin-offline)."""
        try:
            with open(f"{HOME}/scripts/.standin-offline") as f:
                offline = {x.strip() for x in f.read().replace(",", "\n").splitlines() if x.strip()}
        except OSError:
            return False
        waiting = [c for c in getattr(module, "markets", {}) or {}
                   if "*" in offline or c.removesuffix("_paper_trade") in offline]
        if n % 10 == 1 and waiting:
            logging.getLogger("hummingbot.connector.time_synchronizer").warning(
                "Could not refresh server time. Check network connection.")
        for connector in waiting:
            logging.getLogger("hummingbot.strategy.script_strategy_base").warning(
                f"{connector} is not ready. Please wait...")
        return bool(waiting)

    def tui(self, strategy):
        """A legacy bot draws its full-screen text UI on the console (HEADLESS_MODE not given)."""
        while True:
            sys.stdout.write(TUI.format(strategy=strategy) + "\n")
            sys.stdout.flush()
            time.sleep(5.0)


async def quick_start(args, secrets_manager):
    client_config_map = load_client_config_map_from_file()
    hb = await bootstrap_application(client_config_map, secrets_manager,
                                     headless=args.headless, mqtt_autostart=args.headless)
    if hb is None:
        return
    keys = decrypt_all(secrets_manager.password)
    bot = Bot(client_config_map, keys, args.headless)
    conf = args.v2_conf
    bot.log_to("logs_hummingbot.log" if args.headless else f"logs_{conf[:-4] or 'hummingbot'}.log")
    strategy = None
    if conf:
        strategy = bot.load_strategy(conf)
        if strategy is None and args.headless:
            logging.getLogger().error("Failed to load strategy. Exiting.")
            raise SystemExit(1)
        bot.log_to(f"logs_{conf[:-4]}.log")
    app = logging.getLogger("hummingbot.client.hummingbot_application")
    if args.headless:
        app.info("Starting Hummingbot in headless mode...")
        app.info("MQTT enabled - waiting for MQTT commands...")
        app.info("Bot is ready to receive commands via MQTT")
    threading.Thread(target=bot.mqtt, daemon=True).start()
    if not args.headless:
        threading.Thread(target=bot.tui, args=(conf[:-4] or "none",), daemon=True).start()
    clock = Clock(1.0)
    if strategy is not None:
        clock.add_iterator(strategy)
    clock.run_til()


def main():
    time.sleep(START_DELAY)
    # Records before the client sets its logging up go to stderr (the command sends it to errors.log).
    logging.basicConfig(format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    args = types.SimpleNamespace(v2_conf=os.environ.get("SCRIPT_CONFIG", ""),
                                 config_password=os.environ.get("CONFIG_PASSWORD", ""),
                                 headless=os.environ.get("HEADLESS_MODE", "").lower() == "true")
    load_client_config_map_from_file()  # as the real main: before the password is checked
    secrets_manager = ETHKeyFileSecretManger(args.config_password)
    ev_loop = asyncio.new_event_loop()
    asyncio.set_event_loop(ev_loop)
    ev_loop.run_until_complete(quick_start(args, secrets_manager))


if __name__ == "__main__":
    main()
