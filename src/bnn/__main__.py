"""``python -m bnn``: the bnn command."""

from .cli import main

raise SystemExit(main())
