"""The master account's .password_verification, made at start when it is missing, as the real app
does (both generations): the hex of a v3 key file's JSON, encrypted with CONFIG_PASSWORD, so
add-account copies a file of the real shape. Its crypto is the stand-in bot's
(hummingbot/client/config/config_crypt.py there: sha256 for keccak-256, xor for aes-128-ctr);
keep the two the same."""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import os

import config
from utils import file_system as fs

PASSWORD_VERIFICATION_WORD = "HummingBot"
PASSWORD_VERIFICATION_PATH = "credentials/master_account/.password_verification"
ITERATIONS = 1000


def new_password_required() -> bool:
    return not os.path.exists(os.path.join(fs.BASE, PASSWORD_VERIFICATION_PATH))


def store_password_verification(password: str) -> None:
    salt = os.urandom(16)
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS, 32)
    ciphertext = bytes(b ^ key[i % 16] for i, b in enumerate(PASSWORD_VERIFICATION_WORD.encode()))
    keyfile = {
        "crypto": {
            "cipher": "aes-128-ctr", "cipherparams": {"iv": os.urandom(16).hex()}, "ciphertext": ciphertext.hex(),
            "kdf": "pbkdf2", "kdfparams": {"c": ITERATIONS, "dklen": 32, "prf": "hmac-sha256", "salt": salt.hex()},
            "mac": hashlib.sha256(key[16:32] + ciphertext).hexdigest(),
        },
        "version": 3,
        "standin": "sha256 for keccak-256, xor for aes-128-ctr",
    }
    path = os.path.join(fs.BASE, PASSWORD_VERIFICATION_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(binascii.hexlify(json.dumps(keyfile).encode()).decode())


def ensure_password_verification() -> None:
    if new_password_required():
        store_password_verification(config.CONFIG_PASSWORD)
        logging.info("Created password verification file for master_account")
