"""File helpers rooted at `bots/`, with the real app's error messages."""

from __future__ import annotations

import os
import shutil

import yaml

BASE = "bots"


def read_yaml_file(rel_path: str) -> dict:
    path = os.path.join(BASE, rel_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"YAML file '{rel_path}' not found")
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def dump_dict_to_yaml(rel_path: str, data: dict) -> None:
    path = os.path.join(BASE, rel_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        yaml.dump(data, fh, default_flow_style=False, allow_unicode=True)


def list_files(rel_dir: str) -> list[str]:
    path = os.path.join(BASE, rel_dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Directory '{rel_dir}' not found")
    return sorted(f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f)))


def list_folders(rel_dir: str) -> list[str]:
    path = os.path.join(BASE, rel_dir)
    return sorted(f for f in os.listdir(path) if os.path.isdir(os.path.join(path, f)))


def delete_folder(rel_dir: str, name: str) -> None:
    path = os.path.join(BASE, rel_dir, name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"Folder '{name}' not found in '{rel_dir}'")
    shutil.rmtree(path)
