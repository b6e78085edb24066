"""``python -m breaker``: the same as the ``breaker`` command."""

from breaker.cli import main

raise SystemExit(main())
