"""Notification targets: apprise URLs from settings, or an apprise config file with tags.

In ``MEDIC_NOTIFY_URLS`` an entry may carry tags as apprise's own config files
do: ``critical,error=tgram://bottoken/chat_id``. A message goes to the targets
tagged with its severity, and to every untagged target. A target is known by a
hash of its URL: the URL itself (it holds tokens) is never stored or shown; it
appears only in apprise's privacy form.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import apprise

_TAGGED = re.compile(r"^(?P<tag>[\w-]+)\s*=\s*(?P<url>[a-z][a-z0-9+.-]*://.*)$", re.I)


def split_entries(value: str) -> list[tuple[frozenset[str], str]]:
    """`a,b=url1,url2` -> [({a, b}, url1), ({}, url2)]. A comma-separated piece without `://`
    is a tag when a later piece says `tag=url`, else it continues the URL before it (apprise
    URLs may hold commas, e.g. several chat ids)."""
    entries: list[tuple[list[str], str]] = []
    pending: list[str] = []
    for piece in (p.strip() for p in (value or "").split(",")):
        if "://" not in piece:
            if piece:
                pending.append(piece)
            continue
        m = _TAGGED.match(piece)
        if m:
            entries.append(([*pending, m["tag"]], m["url"].strip()))
        else:
            if pending and entries:
                tags, url = entries[-1]
                entries[-1] = (tags, url + "," + ",".join(pending))
            entries.append(([], piece))
        pending = []
    if pending and entries:
        tags, url = entries[-1]
        entries[-1] = (tags, url + "," + ",".join(pending))
    return [(frozenset(t.strip() for t in tags), url) for tags, url in entries]


class TargetError(ValueError):
    """A URL or config file apprise cannot use; the message never shows the secret parts."""


@dataclass
class Target:
    id: str
    private: str  # the URL in apprise's privacy form, safe to show
    kind: str  # telegram | slack | text: how messages are rendered for it
    tags: frozenset[str] = field(default_factory=frozenset)
    plugin: object = None

    def wants(self, severity: str) -> bool:
        return not self.tags or severity in self.tags or "all" in self.tags


def _kind(plugin) -> str:
    name = type(plugin).__name__.lower()
    if "telegram" in name:
        return "telegram"
    if "slack" in name:
        return "slack"
    return "text"


def _target(url: str, tags: frozenset[str], plugin) -> Target:
    ident = hashlib.sha256(url.encode()).hexdigest()[:16]
    return Target(ident, plugin.url(privacy=True), _kind(plugin), tags, plugin)


def parse_urls(value: str) -> list[Target]:
    out = []
    for tags, url in split_entries(value):
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.split("://", 1)[0]
            raise TargetError(f"apprise cannot use a {scheme}:// URL (unknown service or malformed)")
        out.append(_target(url, tags, plugin))
    return out


def parse_config(path: Path) -> list[Target]:
    config = apprise.AppriseConfig()
    if not config.add(str(path)):
        raise TargetError(f"cannot read the apprise config file {path}")
    out = []
    for plugin in config.servers():
        url = plugin.url(privacy=False)
        out.append(_target(url, frozenset(plugin.tags), plugin))
    if not out:
        raise TargetError(f"the apprise config file {path} has no usable URL")
    return out
