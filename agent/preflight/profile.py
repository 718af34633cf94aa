"""The credentials profile a deploy names, on disk as hummingbot-api will copy it
(bots/credentials/<profile>/ into the bot's conf/): exists, complete, a usable
.password_verification."""

from __future__ import annotations

from pathlib import Path

from agent.actions.base import ActionError
from agent.actions.hummingbot import verification_problem
from agent.actions.keyfiles import placed_keys
from agent.match import captures as capture_check
from agent.names import protected_profile
from agent.preflight.model import NAME, PROFILE, Context, DeployRequest, Finding, refused, skipped


def _folder(req: DeployRequest, ctx: Context, check: str) -> Path | Finding | None:
    """The profile's folder (it may not exist), a finding when it cannot be looked at, None when
    the body names no profile (the instance-name check says so)."""
    profile = req.profile
    if profile is None:
        return None
    if ctx.bots_dir is None:
        return skipped(check, "no bots folder (MEDIC_BOTS_DIR)")
    # hummingbot-api's template may be deployed with; hb-medic only never changes it (no fix).
    bad = refused(check, "credentials_profile", profile, NAME if protected_profile(profile) else PROFILE)
    if bad is not None:
        return bad
    return ctx.bots_dir / "credentials" / profile


def profile_exists(req: DeployRequest, ctx: Context) -> Finding | None:
    """hummingbot-api copies bots/credentials/<profile> into the bot's folder: a missing one is
    the seed incident (rule credentials-profile-missing)."""
    folder = _folder(req, ctx, "profile")
    if not isinstance(folder, Path):
        return folder
    profile = folder.name
    if folder.is_dir():
        return Finding("profile", True, f"credentials profile {profile} exists")
    return Finding("profile", False, f"credentials profile {profile} does not exist",
                   rule="credentials-profile-missing", captures={"profile": profile},
                   fixable=not protected_profile(profile),
                   fix=f"hb-medic adds profile {profile} through add-account (and the exchange keys placed"
                       " for it)")


def profile_complete(req: DeployRequest, ctx: Context) -> Finding | None:
    """A folder without conf_client.yml (made with mkdir -p) fails the deploy one step later
    (rule credentials-profile-incomplete). hb-medic repairs it (delete-account, add-account) only
    when it is half-made as the rule's action sees it: no connectors/ folder, so no keys to lose."""
    folder = _folder(req, ctx, "profile-complete")
    if not isinstance(folder, Path) or not folder.is_dir():
        return folder if isinstance(folder, Finding) and folder.skipped else None
    profile = folder.name
    if (folder / "conf_client.yml").is_file():
        return Finding("profile-complete", True, f"credentials profile {profile} has its conf_client.yml")
    instance = req.instance
    captures = {"instance": instance} if instance and capture_check.check(NAME, instance) is None else {}
    says = f"credentials profile {profile} has no conf_client.yml: the deploy will fail"
    if not (folder / "connectors").is_dir() and not protected_profile(profile):
        return Finding("profile-complete", False, says, rule="credentials-profile-incomplete",
                       captures=captures, fixable=True,
                       fix=f"hb-medic repairs profile {profile} (delete-account, add-account)")
    return Finding("profile-complete", False, says, rule="credentials-profile-incomplete", captures=captures,
                   fix=f"profile {profile} holds a connectors/ folder, so hb-medic leaves it alone: copy"
                       f" bots/credentials/master_account/conf_client.yml into bots/credentials/{profile}/")


def password_verification(req: DeployRequest, ctx: Context) -> Finding | None:
    """The bot checks its password against conf/.password_verification at start and exits when
    the file is missing or damaged (rule bot-password-file-missing). Rebuilding the profile
    writes a new one; hb-medic does it only when no exchange keys would be lost (the profile
    holds none, or only keys the operator placed in MEDIC_CREDENTIALS_DIR)."""
    folder = _folder(req, ctx, "password-verification")
    if not isinstance(folder, Path) or not folder.is_dir():
        return folder if isinstance(folder, Finding) and folder.skipped else None
    profile = folder.name
    problem = verification_problem(folder / ".password_verification")
    if problem is None:
        return Finding("password-verification", True, f"credentials profile {profile} has a usable"
                                                      " .password_verification")
    says = f"credentials profile {profile}: .password_verification {problem}: the bot will stop at start"
    keys = folder / "connectors"
    held = sorted(p.stem for p in keys.glob("*.yml")) if keys.is_dir() else []
    try:
        placed = set(placed_keys(ctx.credentials_dir, profile))
    except ActionError:  # a key file hb-medic would refuse to read: none of them counts as placed
        placed = set()
    lost = [c for c in held if c not in placed]
    if not lost and not protected_profile(profile):
        return Finding("password-verification", False, says, rule="bot-password-file-missing",
                       captures={"problem": problem}, fixable=True,
                       fix=f"hb-medic rebuilds profile {profile} (delete-account, add-account"
                           + (", then adds back the keys placed for it)" if held else ")"))
    return Finding("password-verification", False, says, rule="bot-password-file-missing",
                   captures={"problem": problem},
                   fix=f"profile {profile} holds keys for {', '.join(lost)}, which a rebuild would drop:"
                       " copy bots/credentials/master_account/.password_verification into"
                       f" bots/credentials/{profile}/, or place the keys in"
                       f" MEDIC_CREDENTIALS_DIR/{profile}/<connector>.json")
