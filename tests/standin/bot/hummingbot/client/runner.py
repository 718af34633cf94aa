"""The stand-in's bootstrap_application: the log-in step of the real one (the frame and the
"Invalid password." record); the rest of the start is the quickstart's."""

import logging


async def bootstrap_application(client_config_map, secrets_manager, *, headless: bool = False,
                                mqtt_autostart: bool = False):
    from hummingbot.client.config.security import Security
    if not Security.login(secrets_manager):
        logging.getLogger().error("Invalid password.")
        return None
    return client_config_map
