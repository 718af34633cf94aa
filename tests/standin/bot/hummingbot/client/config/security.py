"""The stand-in's Security.login: the frame between the runner and validate_password, as the real one."""

from hummingbot.client.config.config_crypt import BaseSecretsManager, validate_password


class Security:
    secrets_manager = None

    @classmethod
    def login(cls, secrets_manager: BaseSecretsManager) -> bool:
        if not validate_password(secrets_manager):
            return False
        cls.secrets_manager = secrets_manager
        return True
