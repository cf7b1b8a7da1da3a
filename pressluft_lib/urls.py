"""Repository URLs (restic repositories, git remotes): credentials never ride in a URL.

A URL is stored in job payloads, audit rows and release history and printed by the CLI, so a password
or token in its userinfo (`https://user:secret@host`, `https://TOKEN@host`) would leak everywhere.
Such URLs are refused with a message that never repeats the URL.
"""

from __future__ import annotations

import re

from pressluft_lib.errors import ValidationError

# scheme://userinfo@host..., also behind a restic prefix (rest:https://..., s3:https://...).
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#\s]*)@")
# Schemes whose user name is an account (an SSH login), not a credential.
_LOGIN_SCHEMES = frozenset(("ssh", "git+ssh", "ssh+git", "sftp"))


def refuse_credentials(url: str, what: str, hint: str) -> str:
    """`url` unchanged, or ValidationError when its userinfo holds a password or an HTTP(S) user/token."""
    for match in _USERINFO_RE.finditer(url):
        scheme, userinfo = match.group(1).lower(), match.group(2)
        if ":" in userinfo or "%3a" in userinfo.lower() or scheme not in _LOGIN_SCHEMES:
            raise ValidationError(
                f"the {what} must not contain credentials (user, password or token before '@'): {hint}",
                details={what.replace(" ", "_"): "<refused>"},
            )
    return url


def shown(url: str) -> str:
    """`url` for an error message: itself, or a placeholder when it may hold a credential."""
    return "<refused>" if "@" in url and "://" in url else repr(url)
