"""The bots folder's skeleton (bots_skeleton names exactly the folders missing from a read-only
bots folder, or all of them when it is not mounted) and the engine's reason a container did not
start (one engine line, told by port-in-use), as pure logic."""

from __future__ import annotations

from pathlib import Path

from agent.actions.host import SKELETON, SkeletonParams, bots_skeleton, missing_skeleton
from agent.events import API, Origin
from agent.ingest.environment import ENGINE, start_error_event
from agent.match.loader import load_rules
from agent.match.matcher import Matcher

RULES = Path(__file__).resolve().parent.parent.parent / "rules"
MATCHER = Matcher(load_rules(RULES).rules)


class _Ctx:
    """What bots_skeleton reads of its context: the bots folder only."""

    def __init__(self, bots_dir: Path | None) -> None:
        self.bots_dir = bots_dir


def _skeleton(root: Path, without: tuple[str, ...] = ()) -> Path:
    bots = root / "bots"
    for folder in SKELETON:
        if folder not in without:
            (bots / folder).mkdir(parents=True, exist_ok=True)
    bots.mkdir(exist_ok=True)
    return bots


def test_the_missing_folders_of_a_mounted_bots_folder_are_named_in_one_mkdir(tmp_path):
    bots = _skeleton(tmp_path, without=("scripts", "conf/scripts"))
    assert missing_skeleton(bots) == ["conf/scripts", "scripts"]
    told = bots_skeleton(SkeletonParams(), _Ctx(bots))
    assert "run: mkdir -p bots/conf/scripts bots/scripts (empty folders" in told
    assert "master_account" not in told


def test_a_link_or_a_file_in_a_folders_place_counts_as_missing(tmp_path):
    bots = _skeleton(tmp_path, without=("scripts", "archived"))
    (bots / "scripts").symlink_to(tmp_path)
    (bots / "archived").write_text("")
    assert missing_skeleton(bots) == ["archived", "scripts"]


def test_without_credentials_the_template_account_is_named_too(tmp_path):
    bots = _skeleton(tmp_path, without=("credentials",))
    told = bots_skeleton(SkeletonParams(), _Ctx(bots))
    assert "mkdir -p bots/credentials " in told and "bots/credentials/master_account from a fresh" in told


def test_without_the_bots_folder_every_skeleton_folder_is_named(tmp_path):
    told = bots_skeleton(SkeletonParams(), _Ctx(None))
    assert "mkdir -p " + " ".join(f"bots/{f}" for f in SKELETON) in told
    assert "MEDIC_BOTS_DIR" in told


def test_a_complete_bots_folder_says_so(tmp_path):
    told = bots_skeleton(SkeletonParams(), _Ctx(_skeleton(tmp_path)))
    assert "every folder of the skeleton is in bots/" in told


def _start_error(error: str, role: str = API, container: str = "hummingbot-api"):
    info = {"State": {"Running": False, "Error": error, "FinishedAt": "2026-11-29T08:00:00Z"}}
    return start_error_event(info, error, container, role, "default")


def test_the_engines_reason_is_one_engine_line_that_port_in_use_reads():
    for error, address in (
            ("driver failed programming external connectivity on endpoint hummingbot-api (3f2a): Bind for"
             " 0.0.0.0:8000 failed: port is already allocated", "0.0.0.0"),
            ("driver failed programming external connectivity on endpoint hummingbot-postgres (9c1d): Error"
             " starting userland proxy: listen tcp4 0.0.0.0:5432: bind: address already in use", "0.0.0.0")):
        event = _start_error(error)
        assert event.stream == ENGINE and event.origin == Origin("hummingbot-api", ENGINE, API, "default")
        res = MATCHER.match(event)
        assert res is not None and res.rule.id == "port-in-use", event.lines
        assert res.captures["address"] == address and res.captures["port"] in ("8000", "5432")


def test_another_reason_is_told_by_no_port_rule_and_a_long_one_is_cut():
    event = _start_error("error while creating mount source path '/srv/bots': mkdir /srv: read-only file"
                         " system")
    res = MATCHER.match(event)
    assert res is None or res.rule.id != "port-in-use"
    assert len(_start_error("x" * 5000).lines[0]) < 600
