#!/usr/bin/env python
"""A stand-in for a Hummingbot bot as hummingbot-api deploys it.

It behaves like the real client in the captures (real-logs/bots): the same lines in
the same places (errors.log before logging is set up, then the console as
`HH:MM:SS - logger - message` and logs/logs_*.log in the full format with the
tracebacks), the same exit codes, chosen by the files the deploy gave it, as
the real one chooses:

- conf/.password_verification missing: the FileNotFoundError traceback, exit 1;
  one saying `standin-sha256:<hash>` of another password: `Invalid password.`, exit 0;
- conf/conf_client.yml not valid (mqtt_port not a number): ConfigValidationError, exit 1;
- a connector's keys (conf/connectors/<c>.yml) made with another password: MAC mismatch, exit 1;
- SCRIPT_CONFIG missing from conf/scripts, its script missing from scripts/, a script with a
  syntax error or a missing module, or one trading on a live connector without keys: the
  strategy does not start (exit 1; a legacy bot, without HEADLESS_MODE, draws its text UI and
  keeps running);
- otherwise it runs: a script's on_tick() each second (an exception is the clock's error), and
  the MQTT bridge to the broker in conf_client.yml, with a heartbeat hummingbot-api hears;
- a script's connector whose exchange is cut off (test bed: named in scripts/.standin-offline) is
  not ready: the strategy says so on every tick instead of ticking;
- its memory is its script's: one that allocates is killed by the kernel under a memory limit
  (bash, PID 1, then says "Killed"); a logs folder it cannot write stops bash's redirect before
  python starts (as the real image's command does).

The real client takes about 7 s to start; this one takes about 1 s.
"""

import hashlib
import logging
import os
import socket
import sys
import threading
import time
import types

import yaml

HOME = "/home/hummingbot"
CONF = f"{HOME}/conf"
LOGS = f"{HOME}/logs"
START_DELAY = float(os.environ.get("STANDIN_START_DELAY", "1.0"))
HEARTBEAT = 5.0
RECONNECT = 5.0
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


def validate_password(password):
    path = f"{CONF}/.password_verification"
    with open(path) as f:  # missing: the traceback goes to errors.log, as the real one's
        content = f.read().strip()
    return _matches(content, password)


def _matches(content, password):
    if content.startswith("standin-sha256:"):
        return content.split(":", 1)[1] == hashlib.sha256(password.encode()).hexdigest()
    return True


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
        if self.file is not None:
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
        root = logging.getLogger()
        core = logging.getLogger("hummingbot.core.trading_core")
        path = f"{CONF}/scripts/{conf}"
        if not os.path.isfile(path):
            root.error(f"V2 config file not found: {path}")
            return None
        with open(path) as f:
            script_file = (yaml.safe_load(f) or {}).get("script_file_name", "")
        strategy = script_file[:-3] if script_file.endswith(".py") else script_file
        root.info(f"Starting V2 script strategy: {strategy}")
        try:
            module = self.import_script(strategy)
            for connector in getattr(module, "markets", {}) or {}:
                if not connector.endswith("_paper_trade") and connector not in self.keys:
                    raise ValueError(f"API keys required for live trading connector '{connector}'. "
                                     f"Either provide API keys or use a paper trade connector.")
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
        return module

    @staticmethod
    def import_script(strategy):
        path = f"{HOME}/scripts/{strategy}.py"
        if not os.path.isfile(path):
            raise ValueError(f"Unknown strategy: {strategy}")
        with open(path) as f:
            code = compile(f.read(), path, "exec")
        module = types.ModuleType(f"scripts.{strategy}")
        module.logger = logging.getLogger("hummingbot.strategy.strategy_v2_base")
        exec(code, module.__dict__)
        return module

    # -- running ------------------------------------------------------------------------------
    def mqtt(self):
        app = logging.getLogger("hummingbot.client.hummingbot_application")
        bridge = self.client.get("mqtt_bridge") or {}
        host, port = bridge.get("mqtt_host", "localhost"), int(bridge.get("mqtt_port", 1883))
        app.info("Connecting MQTT Bridge...")
        while True:
            try:
                with socket.create_connection((host, port), timeout=5) as s:
                    app.info("MQTT Bridge connected with success.")
                    while True:
                        s.sendall(f"HB {self.instance}\n".encode())
                        time.sleep(HEARTBEAT)
            except OSError as e:
                text = f"[Errno {e.errno}] {os.strerror(e.errno)}" if e.errno else str(e)
                app.warning(f"MQTT bridge disconnected: {text}. Reconnecting in {RECONNECT}s.")
                time.sleep(RECONNECT)

    def clock(self, module):
        clock = logging.getLogger("hummingbot.core.clock")
        n = 0
        while True:
            time.sleep(1.0)
            n += 1
            if module is not None and self.not_ready(module, n):
                continue
            tick = getattr(module, "on_tick", None) if module is not None else None
            if tick is None:
                continue
            try:
                tick()
            except Exception:
                clock.error("Unexpected error running clock tick.", exc_info=True)

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


def main():
    time.sleep(START_DELAY)
    password = os.environ.get("CONFIG_PASSWORD", "")
    if not validate_password(password):
        logging.basicConfig(format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
        logging.getLogger().error("Invalid password.")
        return 0
    client = load_client_config_map_from_file()
    keys = decrypt_all(password)
    headless = os.environ.get("HEADLESS_MODE", "").lower() == "true"
    bot = Bot(client, keys, headless)
    conf = os.environ.get("SCRIPT_CONFIG", "")
    bot.log_to("logs_hummingbot.log" if headless else f"logs_{conf[:-4] or 'hummingbot'}.log")
    module = None
    if conf:
        module = bot.load_strategy(conf)
        if module is None and headless:
            logging.getLogger().error("Failed to load strategy. Exiting.")
            return 1
        bot.log_to(f"logs_{conf[:-4]}.log")
    app = logging.getLogger("hummingbot.client.hummingbot_application")
    if headless:
        app.info("Starting Hummingbot in headless mode...")
        app.info("MQTT enabled - waiting for MQTT commands...")
        app.info("Bot is ready to receive commands via MQTT")
    threading.Thread(target=bot.mqtt, daemon=True).start()
    if not headless:
        threading.Thread(target=bot.tui, args=(conf[:-4] or "none",), daemon=True).start()
    bot.clock(module)
    return 0


if __name__ == "__main__":
    sys.exit(main())
