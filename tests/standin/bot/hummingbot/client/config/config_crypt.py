"""The stand-in's config_crypt: the real module's names, control flow and the lines its tracebacks
show (validate_password, decrypt_secret_value), so a missing or damaged .password_verification
fails with the real frames and exception (FileNotFoundError, binascii.Error, UnicodeDecodeError,
JSONDecodeError). The key file has the real one's shape (the hex of a v3 key file's JSON); only its
crypto is the stand-in's (sha256 stands for keccak-256, xor for aes-128-ctr: the standard library
has neither). A key file without the stand-in's mark (a real client's) is taken as unlocked: its
MAC cannot be checked here."""

# ruff: noqa: UP015  (validate_password's lines are the real ones: a traceback shows them)

import binascii
import hashlib
import json
import os
from abc import ABC, abstractmethod

CONF_DIR_PATH = "/home/hummingbot/conf"
PASSWORD_VERIFICATION_WORD = "HummingBot"
PASSWORD_VERIFICATION_PATH = f"{CONF_DIR_PATH}/.password_verification"
STANDIN_MARK = "standin"
STANDIN_SHA = "standin-sha256:"  # the test bed's short form of a file made with another password
ITERATIONS = 1000


class BaseSecretsManager(ABC):
    def __init__(self, password: str):
        self._password = password

    @property
    def password(self) -> str:
        return self._password

    @abstractmethod
    def encrypt_secret_value(self, attr: str, value: str):
        pass

    @abstractmethod
    def decrypt_secret_value(self, attr: str, value: str) -> str:
        pass


class ETHKeyFileSecretManger(BaseSecretsManager):
    def encrypt_secret_value(self, attr: str, value: str):
        if self._password is None:
            raise ValueError(f"Could not encrypt secret attribute {attr} because no password was provided.")
        password_bytes = self._password.encode()
        value_bytes = value.encode()
        keyfile_json = _create_v3_keyfile_json(value_bytes, password_bytes)
        json_str = json.dumps(keyfile_json)
        encrypted_value = binascii.hexlify(json_str.encode()).decode()
        return encrypted_value

    def decrypt_secret_value(self, attr: str, value: str) -> str:
        if self._password is None:
            raise ValueError(f"Could not decrypt secret attribute {attr} because no password was provided.")
        if value.startswith(STANDIN_SHA):
            return _standin_sha(value, self._password)
        value = binascii.unhexlify(value)
        decrypted_value = Account.decrypt(value.decode(), self._password).decode()
        return decrypted_value


def store_password_verification(secrets_manager: BaseSecretsManager):
    encrypted_word = secrets_manager.encrypt_secret_value(PASSWORD_VERIFICATION_WORD, PASSWORD_VERIFICATION_WORD)
    with open(PASSWORD_VERIFICATION_PATH, "w") as f:
        f.write(encrypted_word)


def validate_password(secrets_manager: BaseSecretsManager) -> bool:
    valid = False
    with open(PASSWORD_VERIFICATION_PATH, "r") as f:
        encrypted_word = f.read()
    try:
        decrypted_word = secrets_manager.decrypt_secret_value(PASSWORD_VERIFICATION_WORD, encrypted_word)
        valid = decrypted_word == PASSWORD_VERIFICATION_WORD
    except ValueError as e:
        if str(e) != "MAC mismatch":
            raise e
    return valid


class Account:
    """eth_account's Account.decrypt, as far as hummingbot uses it: a key file's JSON in (its
    JSONDecodeError, KeyError or TypeError otherwise), the message out, "MAC mismatch" for another
    password."""

    @staticmethod
    def decrypt(keyfile_json: str, password: str) -> bytes:
        keyfile = json.loads(keyfile_json)
        keyfile["version"]  # eth_keyfile reads it first: a KeyError without it, a TypeError for a list
        if STANDIN_MARK not in keyfile:
            return PASSWORD_VERIFICATION_WORD.encode()
        crypto = keyfile["crypto"]
        key = _derive(password.encode(), bytes.fromhex(crypto["kdfparams"]["salt"]), crypto["kdfparams"]["c"])
        ciphertext = bytes.fromhex(crypto["ciphertext"])
        if hashlib.sha256(key[16:32] + ciphertext).hexdigest() != crypto["mac"]:
            raise ValueError("MAC mismatch")
        return _xor(ciphertext, key[:16])


def _create_v3_keyfile_json(message_to_encrypt: bytes, password: bytes) -> dict:
    salt = os.urandom(16)
    key = _derive(password, salt, ITERATIONS)
    ciphertext = _xor(message_to_encrypt, key[:16])
    return {
        "crypto": {
            "cipher": "aes-128-ctr", "cipherparams": {"iv": os.urandom(16).hex()}, "ciphertext": ciphertext.hex(),
            "kdf": "pbkdf2", "kdfparams": {"c": ITERATIONS, "dklen": 32, "prf": "hmac-sha256", "salt": salt.hex()},
            "mac": hashlib.sha256(key[16:32] + ciphertext).hexdigest(),
        },
        "version": 3,
        STANDIN_MARK: "sha256 for keccak-256, xor for aes-128-ctr",
    }


def _derive(password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)


def _xor(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % len(key)] for i, b in enumerate(data))


def _standin_sha(value: str, password: str) -> str:
    if value.split(":", 1)[1].strip() != hashlib.sha256(password.encode()).hexdigest():
        raise ValueError("MAC mismatch")
    return PASSWORD_VERIFICATION_WORD
