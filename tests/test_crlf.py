"""CRLF lines from a container without a TTY (a program that writes \\r\\n itself, or whose
text layer adds \\r to every \\n it is given) match like any other line, followed live from
the engine, with the rules' own container and stream conditions."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest

from agent.ingest.assemble import Assembler
from agent.ingest.follow import Ingest
from agent.ingest.pipeline import Pipeline
from agent.match.library import load_library
from agent.match.matcher import Matcher
from tests.images import TOOLS_IMAGE
from tests.stack import REPO, labels, prefixed_rules, wait_until

pytestmark = pytest.mark.docker
FAILURE = ("{now} - root - ERROR - Error deploying V2 script: [Errno 2] No such file or directory: "
           "'bots/credentials/{profile}'")


def test_crlf_failure_lines_match_live(docker_client, tmp_path: Path):
    prefix = f"medic-crlf-{uuid.uuid4().hex[:6]}-"
    container_name = prefix + "hummingbot-api"
    now = time.strftime("%Y-%m-%d %H:%M:%S,000", time.gmtime())
    legacy = [x.split(" ", 1)[1] for x in (REPO / "rules" / "credentials-profile-missing.samples.log")
              .read_text().split("# expect")[1].splitlines()[1:] if re.match(r"\d{4}-", x)]
    text = (FAILURE.format(now=now, profile="crlf_one") + "\r\n"
            + FAILURE.format(now=now, profile="crlf_two") + "\r\r\n"  # "\n" turned into "\r\n" once more
            + "\r\n".join(legacy).replace("client_sharp", "crlf_three") + "\r\n")
    (tmp_path / "out.txt").write_bytes(text.encode())
    library = load_library(prefixed_rules(prefix, tmp_path / "rules"))
    matcher = Matcher(library.rules)
    found: list[tuple[str, dict]] = []

    def handle(event) -> None:
        res = matcher.match(event)
        if res is not None:
            found.append((res.rule.id, dict(res.captures)))

    pipeline = Pipeline(handle, assembler=Assembler())
    pipeline.start()
    container = docker_client.containers.run(
        TOOLS_IMAGE, entrypoint=["sh", "-c", "cat /t/out.txt >&2; sleep 60"], name=container_name,
        detach=True, network_mode="none", labels=labels("crlf"),
        volumes={str(tmp_path): {"bind": "/t", "mode": "ro"}})
    ingest = Ingest([container_name], pipeline, catchup_window=60)
    ingest.start()
    try:
        wait_until(lambda: len(found) >= 3, 30, "three failures matched")
    finally:
        ingest.stop(time.monotonic() + 5.0)
        pipeline.stop(time.monotonic() + 5.0)
        container.remove(force=True)
    assert sorted(c["profile"] for rule, c in found if rule == "credentials-profile-missing") == [
        "crlf_one", "crlf_three", "crlf_two"]
