"""Credentials taken out of text before it is shown: URLs with a password, secret query values.

Why a module of its own: a URL such as ``redis://:hunter2@cache:6379/0`` is given once
and then travels into messages (a ``CliError``, an event, a log line) that end up in a
terminal, a log store or a Slack channel. Every place that shows text from outside
passes it through here, so there is one rule for what counts as a secret:

- the user-info of a URL: ``scheme://user:secret@host`` keeps the user name and hides the
  rest (``redis://:***@cache``); user-info without a ``:`` is hidden whole (it is often a token);
- query values named like a credential (``password``, ``token``, ``secret``, ``key``, ``sig``...).

A URL's *path* is not guessed at here (Slack and other webhook URLs carry their token there);
``alerts.Webhook`` never shows more of its own URL than scheme, host and port.
"""

from __future__ import annotations

import re

__all__ = ["HIDDEN", "scrub", "url"]

HIDDEN = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/?#'\"<>]*)@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:[A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|auth|sig|signature|credential)"
    r"[A-Za-z0-9_.-]*|key)=)(?P<value>[^&;#\s'\"<>]*)",
    re.IGNORECASE,
)


def _userinfo(m: re.Match[str]) -> str:
    user, colon, _ = m.group("info").partition(":")
    return f"{m.group('scheme')}{user}:{HIDDEN}@" if colon else f"{m.group('scheme')}{HIDDEN}@"


def scrub(text: str) -> str:
    """``text`` with every URL credential in it replaced by ``***``."""
    if "@" not in text and "=" not in text:  # the usual message: nothing to look for
        return text
    text = _USERINFO.sub(_userinfo, text)
    return _SECRET_QUERY.sub(lambda m: m.group("name") + (HIDDEN if m.group("value") else ""), text)


def url(value: str) -> str:
    """One URL (or a path, left alone) as it may be shown: ``redis://:***@cache:6379/0``."""
    return scrub(value)
