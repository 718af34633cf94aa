"""Messages about errors no rule knows: the daily digest and a new error's burst.

Both are `info`/`warning` messages of their own kind through the same outbox as
incident steps. Everything taken from a log (summaries, sample lines) goes in the
excerpt, which every channel shows under a label saying whose output it is, fenced
(quoted line by line in plain text) with its control characters escaped; titles and
summaries carry only counts, container names and fingerprints.
"""

from __future__ import annotations

import time

from agent.notify.message import Message, stack_mark
from agent.records import Unknown
from agent.redact import Redactor

RULE = "unknown-errors"  # the outbox's rule column for these messages
DIGEST_BUDGET = 2800  # characters of entries: the whole digest stays within Telegram's 4096
SAMPLE_LINE = 160


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(at)) + " UTC"


def key_line(e: Unknown) -> str:
    """The line a person recognises: the outermost exception, or the record's message."""
    return e.summary if len(e.summary) <= SAMPLE_LINE else e.summary[:SAMPLE_LINE - 1] + "…"


def suggest_command(e: Unknown) -> str:
    return f"hb-medic rules suggest {e.fingerprint}"


def where(e: Unknown, containers: list[str], show_stack: bool) -> str:
    """The containers it was seen in, with its stack where the agent has several."""
    names = ", ".join(containers) or e.container
    return f"{e.stack}/{names}" if show_stack else names


def digest_message(entries: list[Unknown], since: float, now: float,
                   redactor: Redactor | None = None, show_stack: bool = False) -> Message:
    """The errors no rule knew since the last digest, newest first, each with its count
    (since that digest), container, one line of sample and the command to draft a rule."""
    r = redactor or Redactor()
    total = sum(e.count - e.digested for e in entries)
    blocks: list[str] = []
    used = 0
    for e in entries:
        what = f"{e.logger or e.container} {'traceback' if e.kind == 'traceback' else e.level or e.kind}"
        n = e.count - e.digested
        block = "\n".join([
            f"{n:,} time{'s' if n != 1 else ''} in {where(e, e.containers[:3], show_stack)}"
            f" · last {time.strftime('%H:%M', time.gmtime(e.last_seen))} UTC · {what}",
            f"  {key_line(e)}",
            f"  {suggest_command(e)}"])
        if used + len(block) > DIGEST_BUDGET and blocks:
            break
        blocks.append(block)
        used += len(block) + 2
    rest = len(entries) - len(blocks)
    summary = (f"{len(entries)} kind{'s' if len(entries) != 1 else ''} of error that no rule recognises,"
               f" {total:,} occurrence{'s' if total != 1 else ''} since {_clock(since)}, newest first."
               " Each is noise or the next incident: draft a rule for it with the command under it.")
    if rest:
        hours = max(1, round((now - since) / 3600))
        summary += f" {rest} more are not shown: hb-medic unknown --since {hours}h"
    containers = sorted({where(e, e.containers[:1], show_stack) for e in entries})
    return Message(
        incident="", step="unknown-digest", severity="info", rule=RULE,
        container=", ".join(containers[:3]) + (f" (+{len(containers) - 3})" if len(containers) > 3 else ""),
        title=f"[INFO] Errors no rule knows: {len(entries)} since {_clock(since)}",
        summary=summary, excerpt=r.text("\n\n".join(blocks)),
        excerpt_from="Each error: its count and where, its first line quoted as the program printed it"
                     " (not hb-medic's words), the command that drafts a rule:",
        next_steps="Review a draft before you use it: it is written with observe_only: true."
                   " Keep the ones that are real failures in your rules folder.")


def burst_message(e: Unknown, count: int, window: float, redactor: Redactor | None = None,
                  show_stack: bool = False) -> Message:
    """A new error no rule knows that repeats fast: told at once, once a day at most."""
    r = redactor or Redactor()
    sample = e.samples[0]["text"] if e.samples else e.summary
    minutes = max(1, round(window / 60))
    return Message(
        incident="", step="unknown-burst", severity="warning", rule=RULE, container=e.container,
        stack=e.stack, show_stack=show_stack,
        title=f"[WARNING] {stack_mark(e.stack, show_stack)}New error no rule knows: {count} times within"
              f" {minutes} min in {e.container}",
        summary=(f"An error no rule recognises, first seen {_clock(e.first_seen)}, repeated {count} times"
                 f" within {minutes} minutes in {where(e, [e.container], show_stack)} ({e.fingerprint})."
                 " This message is sent"
                 " once; from now on it is counted and in the daily digest."),
        excerpt=r.text(sample),
        excerpt_from=f"What {e.container} printed on {e.stream}, quoted as it was (not hb-medic's words):",
        next_steps=f"If hb-medic should know it: {suggest_command(e)} (writes a draft rule and its samples"
                   " to review), or see every error no rule knows with: hb-medic unknown")
