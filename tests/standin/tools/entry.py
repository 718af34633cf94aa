"""Entry point: `listener MODE PORT` runs a listener; anything else runs the bot."""

import runpy
import sys

if len(sys.argv) > 1 and sys.argv[1] == "listener":
    sys.argv = ["listener.py", *sys.argv[2:]]
    runpy.run_path("/opt/standin/listener.py", run_name="__main__")
else:
    runpy.run_path("/opt/standin/bot.py", run_name="__main__")
