"""The rule library: the rules shipped inside the package, and the user's folder over them.

The shipped rules are used wherever hb-medic runs (an installed package carries
them as ``agent/rules``; a checkout uses the repository's ``rules/``). A user's
folder (``MEDIC_RULES_DIR`` or ``--rules``) adds rules; one with the id of a
shipped rule replaces it, and the result says which were replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.match.loader import LoadResult, load_rules
from agent.match.model import Rule

_PACKAGE = Path(__file__).resolve().parent.parent


def shipped_dir() -> Path:
    """Where the shipped rules are: inside the installed package, else the checkout's rules/."""
    inside = _PACKAGE / "rules"
    return inside if inside.is_dir() else _PACKAGE.parent / "rules"


@dataclass
class Library(LoadResult):
    """Every rule in force, with where each set came from."""

    shipped: Path = field(default_factory=shipped_dir)
    user: Path | None = None
    shipped_count: int = 0
    user_count: int = 0
    overridden: list[str] = field(default_factory=list)  # shipped ids a user rule replaces

    def folders(self) -> list[Path]:
        return [self.shipped] if self.user is None else [self.shipped, self.user]

    def describe(self) -> str:
        """One line: how many rules from where, and what the user's folder replaced."""
        text = f"{len(self.rules)} rules ({self.shipped_count} shipped"
        if self.user is not None:
            text += f", {self.user_count} from {self.user}"
        text += ")"
        if self.overridden:
            text += f"; {self.user} overrides shipped: {', '.join(self.overridden)}"
        return text


def load_library(user: str | Path | None = None, shipped: Path | None = None) -> Library:
    """The shipped rules, then the user's folder over them (by id). Errors from both."""
    shipped = shipped or shipped_dir()
    base = load_rules(shipped)
    lib = Library(shipped=shipped, shipped_count=len(base.rules))
    lib.errors, lib.files = list(base.errors), list(base.files)
    own_rules: list[Rule] = []
    if user is not None and not _same(Path(user), shipped):
        lib.user = Path(user)
        own = load_rules(lib.user)
        lib.errors += own.errors
        lib.files += own.files
        own_rules = own.rules
        lib.user_count = len(own_rules)
    own_ids = {r.id for r in own_rules}
    lib.overridden = sorted(r.id for r in base.rules if r.id in own_ids)
    lib.rules = [r for r in base.rules if r.id not in own_ids] + own_rules
    return lib


def _same(a: Path, b: Path) -> bool:
    """The user named the shipped folder itself (a checkout's rules/): nothing is added."""
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
