"""A message family's template: literal parts kept (escaped), variable parts as named
captures with a safe capture type.

Variable parts are found two ways: by their shape in any one sample (quoted values,
paths, hosts and ports, addresses, ids, instance names with their stamp, numbers,
timestamps, names after words like "account" or "file"), and by comparing samples
(whatever differs between them becomes free text). The result is checked against
every sample; a template that does not match them all is never returned.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from agent.match.model import Capture

NOUNS = ("account", "profile", "instance", "bot", "container", "config", "connector", "user",
         "script", "controller", "file", "image", "strategy", "exchange", "market", "pair", "source")
_STOP = {"the", "a", "an", "to", "for", "from", "in", "of", "at", "on", "with", "by", "and", "or", "is",
         "was", "not", "no", "has", "have", "be", "error", "failed", "while", "such", "this", "that",
         "found", "after", "before", "into", "via", "than", "then", "when", "reach", "cannot"}

_SAFE_PATH = r"(?!.*\.\.)[A-Za-z0-9_./~-]+"
# (class, regex of the token in a sample)
_TOKENS = [
    ("quoted", r"'[^'\n]*'|\"[^\"\n]*\""),
    ("timestamp", r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"),
    ("clock", r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"),
    ("hostport", r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|localhost):\d{1,5}\b"),
    ("url", r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>:;,.)\]]"),
    ("path", r"(?<![\w.])(?:~?/|\.{1,2}/|[A-Za-z0-9_.-]+/)[A-Za-z0-9_./~-]*[A-Za-z0-9_~-]"),
    ("uuid", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    ("address", r"\b0x[0-9a-fA-F]+\b"),
    ("ip", r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),
    ("instance", r"\b[A-Za-z0-9_][A-Za-z0-9_-]*-\d{8}-\d{6}\b"),
    ("id", r"\b(?:[0-9a-fA-F]{12,}|(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}"
           r"|(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,})\b"),
    ("noun", r"\b(?:" + "|".join(NOUNS) + r") (?=[\w.-]*[\d_.-])[A-Za-z0-9_][A-Za-z0-9_.-]*[A-Za-z0-9_]"),
    ("number", r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])"),
    ("word", r"\w+"),
    ("space", r"\s+"),
    ("punct", r"[^\w\s]"),
]
_TOKEN = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _TOKENS))


@dataclass
class Template:
    regex: str  # anchored: ^...$
    captures: dict[str, Capture] = field(default_factory=dict)
    template: str = ""  # the message with {captures}, for a notify text
    free_text: list[str] = field(default_factory=list)  # captures that stand for text that varied


@dataclass
class _Tok:
    cls: str
    text: str

    @property
    def variable(self) -> bool:
        return self.cls not in ("word", "space", "punct")

    def key(self) -> tuple[str, str]:
        return (self.cls, "") if self.variable else ("lit", self.text)


def tokens(text: str) -> list[_Tok]:
    return [_Tok(m.lastgroup or "punct", m[0]) for m in _TOKEN.finditer(text)]


def _spec(tok: _Tok) -> tuple[str, Capture | None]:
    """(group regex, capture spec or None for a part nobody needs as a value)."""
    cls, text = tok.cls, tok.text
    if cls == "quoted":
        inner = text[1:-1]
        body = "[^'\\n]*" if text[0] == "'" else '[^"\\n]*'
        if "/" in inner:
            return body, Capture(type="text", pattern=_SAFE_PATH, max_length=256)
        if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]*", inner):
            return body, Capture(type="name", max_length=128)
        if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", inner):
            return body, Capture(type="file", max_length=128)
        return body, Capture(type="text", max_length=256)
    if cls in ("timestamp", "clock"):
        return (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?" if cls == "timestamp"
                else r"\d\d:\d\d:\d\d(?:[.,]\d+)?"), None
    if cls == "hostport":  # the caller splits it into a host and a port
        return "", Capture(type="file", pattern=r"[A-Za-z0-9][A-Za-z0-9.-]*", max_length=253)
    if cls == "url":
        return r"[^\s'\"<>]+", Capture(type="text", max_length=512)
    if cls == "path":
        return r"[A-Za-z0-9_./~-]+", Capture(type="text", pattern=_SAFE_PATH, max_length=256)
    if cls == "uuid":
        return r"[0-9a-fA-F-]{36}", Capture(type="name", pattern=r"[0-9a-fA-F-]{36}")
    if cls == "address":
        return r"0x[0-9a-fA-F]+", Capture(type="name", pattern=r"0x[0-9a-fA-F]{1,16}")
    if cls == "ip":
        return r"\d{1,3}(?:\.\d{1,3}){3}", Capture(type="file", pattern=r"\d{1,3}(?:\.\d{1,3}){3}")
    if cls == "instance":
        return r"[A-Za-z0-9_-]+-\d{8}-\d{6}", Capture(type="name", max_length=128)
    if cls == "id":
        return r"[0-9A-Za-z]+", Capture(type="name", max_length=128)
    if cls == "noun":
        return r"[A-Za-z0-9_][A-Za-z0-9_.-]*", Capture(type="file", max_length=128)
    if cls == "number":
        return r"\d+(?:\.\d+)?", Capture(type="file", pattern=r"\d{1,20}(?:\.\d{1,20})?", max_length=41)
    raise ValueError(cls)


def _name(before: list[_Tok], cls: str, taken: set[str], after: list[_Tok] = ()) -> str:
    """A capture's name: the nearest telling word before it (for a number: the word after
    it, "12 tries"), else its kind."""
    base = ""
    if cls == "number" and len(after) >= 2 and after[0].cls == "space" and after[1].cls == "word" \
            and re.fullmatch(r"[A-Za-z]{3,}", after[1].text) and after[1].text.lower() not in _STOP:
        before = [*before, after[1]]
    for tok in reversed(before[-6:]):
        if tok.cls == "punct" and tok.text in ":;,([{=":
            break
        if tok.cls == "word" and tok.text.lower() not in _STOP and re.fullmatch(r"[A-Za-z][A-Za-z_]{2,}",
                                                                                tok.text):
            base = tok.text.lower()
            break
    base = base or {"quoted": "value", "hostport": "host", "noun": "name"}.get(cls, cls)
    base = re.sub(r"[^a-z0-9_]", "_", base)[:30]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _rename(old: str, new: str, taken: set[str]) -> str:
    taken.discard(old)
    name, n = new, 2
    while name in taken:
        name, n = f"{new}_{n}", n + 1
    taken.add(name)
    return name


def generalise(samples: list[str], literal_values: bool = False) -> Template:
    """The template of the samples' messages. `literal_values` keeps values that are the
    same in every sample literal (a narrower draft, when the wide one is too wide)."""
    if not samples:
        raise ValueError("no sample")
    firsts = [s.split("\n", 1)[0] for s in samples]
    multi = any("\n" in s for s in samples)
    toks = [tokens(f) for f in firsts]
    base = toks[0]
    # Positions of the first sample whose text differs in another sample: free text.
    vary = [False] * len(base)
    for other in toks[1:]:
        sm = difflib.SequenceMatcher(a=[t.key() for t in base], b=[t.key() for t in other], autojunk=False)
        for op, i1, i2, _j1, _j2 in sm.get_opcodes():
            if op != "equal":
                # An insertion marks its neighbour in the first sample (if it has one).
                for i in range(i1, i2) if i2 > i1 else [min(max(i1 - 1, 0), len(base) - 1)] if base else []:
                    vary[i] = True
    same_value = [all(len(t) == len(base) and t[i].text == base[i].text for t in toks)
                  for i in range(len(base))]
    parts: list[str] = []
    tmpl: list[str] = []
    caps: dict[str, Capture] = {}
    free: list[str] = []
    taken: set[str] = set()
    i = 0
    while i < len(base):
        tok = base[i]
        if vary[i]:
            j = i
            while j < len(base) and (vary[j] or (base[j].cls == "space" and vary[min(j + 1, len(base) - 1)])):
                j += 1
            name = _name(base[:i], "detail", taken)
            caps[name] = Capture(type="text", max_length=300)
            free.append(name)
            parts.append(f"(?P<{name}>.*?)")
            tmpl.append(f"{{{name}}}")
            i = j
            continue
        if tok.variable and not (literal_values and same_value[i] and tok.cls in ("quoted", "noun", "path")):
            group, spec = _spec(tok)
            if spec is None:
                parts.append(f"(?:{group})")
                tmpl.append("<time>")
            else:
                name = _name(base[:i], tok.cls, taken, base[i + 1:i + 3])
                if tok.cls == "noun":  # "account rc_acct_o2": the word stays, the name is captured
                    word, value = tok.text.split(" ", 1)
                    name = _rename(name, word.lower(), taken)
                    parts.append(f"{word} (?P<{name}>{group})")
                    tmpl.append(f"{word} {{{name}}}")
                    if "." not in value:
                        spec = Capture(type="name", max_length=128)
                elif tok.cls == "quoted":
                    parts.append(f"{re.escape(tok.text[0])}(?P<{name}>{group}){re.escape(tok.text[-1])}")
                    tmpl.append(f"{tok.text[0]}{{{name}}}{tok.text[-1]}")
                elif tok.cls == "hostport":
                    port = _name([*base[:i], _Tok("word", "port")], "number", taken)
                    parts.append(f"(?P<{name}>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<{port}>\\d{{1,5}})")
                    caps[name] = spec
                    caps[port] = Capture(type="name", pattern=r"\d{1,5}", max_length=5)
                    tmpl.append(f"{{{name}}}:{{{port}}}")
                else:
                    parts.append(f"(?P<{name}>{group})")
                    tmpl.append(f"{{{name}}}")
                caps[name] = spec
        else:
            parts.append(re.escape(tok.text) if tok.cls != "space" else r"\s+" if len(tok.text) > 1 else " ")
            tmpl.append(tok.text.replace("{", "(").replace("}", ")"))
        i += 1
    regex = "^" + "".join(parts) + (r"(?:\n[\s\S]*)?$" if multi else "$")
    out = Template(regex, caps, "".join(tmpl), free)
    compiled = re.compile(out.regex)
    if all(compiled.search(s) for s in samples):
        return out
    # Whatever went wrong: the common literal start, the rest as free text (still checked).
    prefix = _common_prefix(firsts)
    regex = "^" + re.escape(prefix) + r"(?P<detail>[\s\S]*)$"
    out = Template(regex, {"detail": Capture(type="text", max_length=1024)}, prefix + "{detail}", ["detail"])
    assert all(re.search(regex, s) for s in samples)
    return out


def _common_prefix(texts: list[str]) -> str:
    first = texts[0]
    n = len(first)
    for t in texts[1:]:
        n = min(n, len(t))
        for k in range(n):
            if first[k] != t[k]:
                n = k
                break
    return first[:n]
