"""What a ``fork()`` leaves behind, re-made in the child.

A forked child (gunicorn's and Celery's pre-fork workers, ``multiprocessing``'s
``fork`` start method) gets a copy of the parent's memory but only the thread
that forked. Everything else the library keeps is then wrong in the child:

* worker threads (the engine's off-loading pools, the ledgers' background
  renewal and replay) are gone, and a pool that still thinks it has them
  queues work nobody runs: the child's async calls hang;
* a lock another parent thread held at that instant stays locked forever;
* a SQLite connection must not be used across a fork (sqlite.org: "How To
  Corrupt An SQLite Database File", section 2.6).

So each object holding such things registers here, and in the child its
``_after_fork()`` drops them; they are made again on first use. The parent is
untouched. Objects are held weakly: registering never keeps one alive.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

__all__ = ["after_fork"]

log = logging.getLogger("breaker")

_objects: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def after_fork(obj: Any) -> None:
    """Call ``obj._after_fork()`` in every child forked from now on (``obj`` held weakly)."""
    with _lock:
        _objects.add(obj)


def _in_child() -> None:
    global _lock
    _lock = threading.Lock()  # it may have been held by a parent thread registering an object
    for obj in list(_objects):
        try:
            obj._after_fork()
        except Exception:  # pragma: no cover - one object must not stop the others
            log.exception("breaker: re-making %r after fork failed", type(obj).__name__)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_in_child)
