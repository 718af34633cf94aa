"""The documentation says only what is true of the tree: links and anchors lead somewhere,
commands shown parse with the real parsers, scripts exist and run, settings exist, and the
module map of agent/ lists exactly the modules there are. No Docker needed."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import io
import itertools
import os
import re
import shlex
import subprocess
import sys
import unicodedata
from argparse import ArgumentParser
from pathlib import Path

import pytest

from agent.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted([REPO / "README.md", REPO / "SECURITY.md", *(REPO / "docs").glob("*.md")])
MODULE_MAP = REPO / "docs" / "development.md"

# MEDIC_* names the docs may use that are not fields of Settings, and why.
EXTRA_SETTINGS = {
    # Read by Settings.settings_customise_sources before any field: it names the file the
    # other settings come from, so it cannot be a field itself.
    "MEDIC_CONFIG_FILE",
}

SHELL = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<", "2>", "2>&1"}


def cli_parser() -> ArgumentParser:
    """The parser of `hb-medic` / `python -m agent`: the one line to adapt when it moves."""
    from agent.cli import build_parser

    return build_parser()


# --------------------------------------------------------------------------- reading markdown

def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@functools.cache
def parse(path: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """(fenced blocks as (language, lines), the prose lines outside them)."""
    blocks: list[tuple[str, list[str]]] = []
    prose: list[str] = []
    fence: str | None = None
    for line in path.read_text().split("\n"):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(2)
            blocks.append((m.group(3).lower(), []))
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is not None:
            blocks[-1][1].append(line)
        else:
            prose.append(line)
    assert fence is None, f"{rel(path)}: a code block is never closed"
    return blocks, prose


def spans(path: Path) -> list[str]:
    """Inline code spans of the prose."""
    return [m.group(2).strip() for line in parse(path)[1] for m in SPAN.finditer(line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lowercased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link counts by its text
    text = text.replace("`", "").strip().lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


@functools.cache
def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in parse(path)[1]:
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    out = []
    for line in parse(path)[1]:
        out += LINK.findall(SPAN.sub("", line))
    return out


# --------------------------------------------------------------------------- commands

def shell_lines(path: Path) -> list[str]:
    """Command lines of the shell blocks, continuation lines joined."""
    out: list[str] = []
    for lang, lines in parse(path)[0]:
        if lang not in SHELL:
            continue
        pending = ""
        for line in lines:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            out.append(pending + line)
            pending = ""
    return out


def words(line: str) -> list[str]:
    return shlex.split(line, comments=True)


def command_at(tokens: list[str], start: int) -> list[str]:
    """The arguments from `start` to the end of that command (a shell operator outside [...])."""
    depth, out = 0, []
    for tok in tokens[start:]:
        if depth == 0 and tok in OPERATORS:
            break
        depth += tok.count("[") - tok.count("]")
        out.append(tok)
    return out


def invocations(tokens: list[str]) -> list[list[str]]:
    """The argument lists given to `hb-medic` or `python -m agent` in one command line."""
    found = []
    for i, tok in enumerate(tokens):
        if tok == "hb-medic" and (i == 0 or tokens[i - 1] != "exec") and tokens[i + 1:i + 2] != ["hb-medic"]:
            found.append(command_at(tokens, i + 1))
        elif tok in ("python", "python3") and tokens[i + 1:i + 3] == ["-m", "agent"]:
            found.append(command_at(tokens, i + 3))
    return found


def placeholder(word: str) -> str:
    return "1" if word == "N" else "x"


def expand(args: list[str]) -> list[list[str]]:
    """Concrete argument lists for a usage line: every [optional] part given, each alternative
    (`a | b`, `console|errors|log`) in a variant of its own, placeholders (`LOGFILE...`) filled."""
    def items(toks: list[str]) -> list[list[list[str]]]:
        """A sequence of items, each a list of alternatives (token lists)."""
        seq: list[list[list[str]]] = []
        while toks:
            tok = toks.pop(0)
            if tok.startswith("[") and tok != "[":
                toks.insert(0, tok[1:])
                tok = "["
            if tok == "[":
                depth, group = 1, []
                while toks:
                    t = toks.pop(0)
                    depth += t.count("[") - t.count("]")
                    if depth == 0:
                        if t.rstrip("]"):
                            group.append(t[:-1])
                        break
                    group.append(t)
                alternatives, current = [], []
                for t in group:
                    if t == "|":
                        alternatives.append(current)
                        current = []
                    else:
                        current.append(t)
                alternatives.append(current)
                seq.append([v for alt in alternatives for v in variants(items(list(alt)))])
                continue
            word = tok.removesuffix("...")
            choices = word.split("|") if "|" in word and not word.startswith("{") else [word]
            seq.append([[placeholder(c) if re.fullmatch(r"[A-Z][A-Z_]*", c) else c] for c in choices])
        return seq

    def variants(seq: list[list[list[str]]]) -> list[list[str]]:
        return [list(itertools.chain.from_iterable(combo)) for combo in itertools.product(*seq)]

    return variants(items(list(args)))


def parses(parser: ArgumentParser, argv: list[str]) -> str | None:
    """None when `argv` parses; otherwise argparse's complaint."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as stop:
            if stop.code:
                return err.getvalue().strip().splitlines()[-1]
    return None


@functools.cache
def module_help(module: str) -> str:
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"python -m {module} --help: {done.stderr[-2000:]}"
    return done.stdout


@functools.cache
def module_refuses(module: str, argv: tuple[str, ...]) -> str | None:
    """The module's own parser on `argv` (no placeholder in it): --help last, so values are
    checked against their choices and nothing runs."""
    done = subprocess.run([sys.executable, "-m", module, *argv, "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    return done.stderr.strip()[-300:] or "refused" if done.returncode else None


def python_m(tokens: list[str]) -> list[tuple[str, list[str]]]:
    """(module, its arguments) for every `python -m MODULE ...` in one command line."""
    return [(tokens[i + 2], command_at(tokens, i + 3)) for i, tok in enumerate(tokens)
            if tok in ("python", "python3") and tokens[i + 1:i + 2] == ["-m"] and len(tokens) > i + 2]


def all_python_m() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in DOCS:
        sources = shell_lines(path) + [s for s in spans(path) if s.startswith(("python -m", "python3 -m"))]
        for line in sources:
            found += [(rel(path), mod, args) for mod, args in python_m(words(line))]
    return found


# --------------------------------------------------------------------------- the tests

def test_the_docs_are_found():
    names = {rel(p) for p in DOCS}
    assert {"README.md", "SECURITY.md", "docs/failures.md", "docs/development.md"} <= names


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_every_code_block_says_its_language(path):
    """A command block cannot hide from the checks below by leaving its language out."""
    assert all(lang for lang, _ in parse(path)[0]), f"{rel(path)}: a ``` block without a language"


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_and_anchors_lead_somewhere(path):
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not broken, f"{rel(path)}: " + "; ".join(broken)


def test_slugs_follow_githubs_rules():
    assert slug("Can it do its job here? `hb-medic doctor`") == "can-it-do-its-job-here-hb-medic-doctor"
    assert slug("Notifications (Slack, Telegram, ...)") == "notifications-slack-telegram-"
    assert slug("What the agent follows, and how it survives restarts") == \
        "what-the-agent-follows-and-how-it-survives-restarts"


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_hb_medic_commands_in_code_blocks_parse(path):
    parser = cli_parser()
    bad = []
    for line in shell_lines(path):
        for args in invocations(words(line)):
            for argv in expand(args):
                if (why := parses(parser, argv)) is not None:
                    bad.append(f"hb-medic {shlex.join(argv)}: {why}")
    assert not bad, f"{rel(path)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_hb_medic_commands_named_in_the_text_exist(path):
    """`hb-medic rules suggest` in a sentence: the command words name a real (sub)command."""
    parser = cli_parser()
    bad = []
    for span in spans(path):
        for args in invocations(words(span) if span.count("'") % 2 == 0 else []):
            names = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][a-z-]*", w), args))
            if names and parses(parser, [*names, "--help"]) is not None:
                bad.append(span)
    assert not bad, f"{rel(path)}: no such command: {bad}"


def test_bench_and_faults_options_exist():
    checked, bad = 0, []
    for where, module, args in all_python_m():
        if importlib.util.find_spec(module) is None:
            bad.append(f"{where}: python -m {module}: no such module")
            continue
        if module.split(".")[0] not in ("bench", "faults"):
            continue
        text = module_help(module)
        for argv in expand(args):
            for i, arg in enumerate(argv):
                if arg.startswith("-"):
                    option = arg.split("=")[0]
                    checked += 1
                    if not re.search(rf"(^|[\s\[,]){re.escape(option)}\b", text):
                        bad.append(f"{where}: python -m {module} {option}: not an option")
                    if module == "bench" and option == "--only" and i + 1 < len(argv):
                        bad += [f"{where}: python -m bench --only {name}: not a group"
                                for name in argv[i + 1].split(",") if name not in text]
            if "x" not in argv and (why := module_refuses(module, tuple(argv))):
                bad.append(f"{where}: python -m {module} {shlex.join(argv)}: {why}")
    assert checked, "no option of python -m bench or faults was found in the docs"
    assert not bad, "; ".join(bad)


def test_scripts_named_exist_and_run():
    bad = []
    for path in DOCS:
        for name in set(re.findall(r"(?<![\w./-])scripts/[\w.-]*\w", path.read_text())):
            script = REPO / name
            if not script.is_file() or not os.access(script, os.X_OK):
                bad.append(f"{rel(path)}: {name}")
    assert not bad, f"missing or not executable: {bad}"


def test_medic_settings_named_exist():
    known = {f"MEDIC_{name.upper()}" for name in Settings.model_fields} | EXTRA_SETTINGS
    bad = [f"{rel(path)}: {name}" for path in DOCS
           for name in sorted(set(re.findall(r"\bMEDIC_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())))
           if name not in known]
    assert not bad, f"no such setting: {bad}"


def holds_code(init: Path) -> bool:
    body = ast.parse(init.read_text()).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return bool(body)


def test_the_module_map_lists_every_module_of_agent_and_nothing_else():
    actual = {rel(p) for p in (REPO / "agent").rglob("*.py")
              if p.name != "__init__.py" or holds_code(p)}
    text = MODULE_MAP.read_text().split("\n## Module map\n", 1)
    assert len(text) == 2, "docs/development.md has no '## Module map' section"
    rows = re.findall(r"^\|\s*`(agent/[^`]+)`\s*\|\s*(.*?)\s*\|\s*$", text[1].split("\n## ")[0], re.M)
    listed = [name for name, _ in rows]
    assert all(what for _, what in rows), "a module in the map says nothing about what it owns"
    twice = sorted({name for name in listed if listed.count(name) > 1})
    assert not twice, f"listed twice: {twice}"
    missing, ghosts = sorted(actual - set(listed)), sorted(set(listed) - actual)
    assert not missing, f"modules missing from the map: {missing}"
    assert not ghosts, f"the map lists modules that do not exist: {ghosts}"


def test_the_readmes_first_screen_gives_the_run_and_test_commands_ci_runs():
    lines = (REPO / "README.md").read_text().split("\n")
    screen = "\n".join(lines[:40])
    blocks, _ = parse(REPO / "README.md")
    first = blocks[0][1]
    assert "\n".join(first) in screen, "the README's first code block is not on its first screen"
    run = [line for line in first if "docker compose -f compose.yaml up" in line]
    assert run and run[0].startswith("DOCKER_GID=$(stat -c %g /var/run/docker.sock) docker compose")
    tests = [words(line) for line in first if line.startswith("scripts/test")]
    assert tests and tests[0] == ["scripts/test"], "the README's first screen gives `scripts/test`"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().split("\n")
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == ["exec scripts/test"], f".ci/run runs {ci}, not the README's test command"


def test_the_command_checks_catch_mistakes():
    parser = cli_parser()
    assert parses(parser, ["rules", "test", "x", "--role", "bot"]) is None
    assert parses(parser, ["rules", "tset", "x"]) is not None
    assert expand(["rules", "test", "--channel", "console|errors|log", "FILE..."]) == [
        ["rules", "test", "--channel", c, "x"] for c in ("console", "errors", "log")]
    assert expand(["incidents", "[--json]", "[--limit", "N]"]) == [["incidents", "--json", "--limit", "1"]]
    assert expand(["suggest", "[--out", "DIR", "|", "--stdout]"]) == [["suggest", "--out", "x"],
                                                                     ["suggest", "--stdout"]]
    assert invocations(words("docker exec hb-medic hb-medic doctor  # a comment")) == [["doctor"]]
    assert invocations(words("MEDIC_X=1 python -m agent run && hb-medic health")) == [["run"], ["health"]]
