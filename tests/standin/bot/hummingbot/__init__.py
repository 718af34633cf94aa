"""The stand-in bot's `hummingbot` package: only the modules whose names, paths and lines the real
client shows (in tracebacks, logger names) or that scripts import, laid out as the real package at
/home/hummingbot/hummingbot, so a failure's last frames are the real ones' (line numbers aside)."""
