"""Log records that carry no request or response text.

A provider's error message can quote the request (an OpenAI or Anthropic 400
names the offending content), and Python chains exceptions: one raised while
another is handled keeps it as ``__context__``. So a traceback logged anywhere
on a call's path (a telemetry or ledger failure while a provider error is being
settled, a user's retry inside an ``except`` block) would print the prompt.

breaker's records name an exception by its type, its HTTP status and, for
breaker's own exceptions (whose messages name scopes, models and counts, never
content), its message: ``error_summary``. ``NoErrorText``, installed on the
``breaker`` logger when this module is imported (every part of breaker that
logs imports it), holds every record to that, at any level: one logged with
``exc_info`` (``log.exception``, ``exc_info=True``) gets the summary in its
message and, as its ``exc_text``, a traceback of frames and exception types,
without the messages the summary leaves out; its ``exc_info`` is dropped, so no
handler can format the original. For the full text of a failure in your own
process, catch and log it in your code.
"""

from __future__ import annotations

import logging
import traceback

__all__ = ["NoErrorText", "error_summary"]

_CHAIN = 4  # causes and contexts named at most


def _one(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    text = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        text += f" (HTTP {status})"
    if module == "breaker" or module.startswith("breaker."):
        message = str(exc)
        if message:
            text += f": {message}"
    return text


def _chain(exc: BaseException | None) -> list[tuple[BaseException, bool]]:
    """``exc`` and what it was raised from (``True``) or while handling, newest first."""
    found: list[tuple[BaseException, bool]] = []
    seen: set[int] = set()
    cause = False
    while exc is not None and id(exc) not in seen and len(found) < _CHAIN:
        seen.add(id(exc))
        found.append((exc, cause))
        cause = exc.__cause__ is not None
        exc = exc.__cause__ if cause else (None if exc.__suppress_context__ else exc.__context__)
    return found


def error_summary(exc: BaseException | None) -> str:
    """``exc`` and the exceptions it was raised from or while handling, without their messages
    (breaker's own excepted): type and HTTP status only, so no provider's error text is repeated."""
    chain = _chain(exc)
    if not chain:
        return "no exception"
    return "".join(("; raised from " if cause else "; while handling ") + _one(e) if i else _one(e)
                   for i, (e, cause) in enumerate(chain))


def _traceback(exc: BaseException) -> str:
    """A traceback as Python prints it, oldest exception first, each named by ``_one``."""
    blocks: list[str] = []
    linked = False  # how the exception before (older) leads to the next: raised from it, or while handling it
    for e, cause in reversed(_chain(exc)):
        if blocks:
            blocks.append("\n\nThe above exception was the direct cause of the following exception:\n\n" if linked
                          else "\n\nDuring handling of the above exception, another exception occurred:\n\n")
        blocks.append("Traceback (most recent call last):\n" + "".join(traceback.format_tb(e.__traceback__)) + _one(e))
        linked = cause
    return "".join(blocks)


class NoErrorText(logging.Filter):
    """Replace a record's traceback with ``error_summary`` of its exception (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = record.exc_info
        if info:
            exc = info[1]
            record.msg = f"{record.getMessage()} ({error_summary(exc)})"
            record.args = None
            record.exc_info = None
            record.exc_text = _traceback(exc) if exc is not None else None
        return True


def _install(logger: logging.Logger) -> None:
    if not any(isinstance(f, NoErrorText) for f in logger.filters):
        logger.addFilter(NoErrorText())


_install(logging.getLogger("breaker"))
