"""``python -m smart_tune``: the command line."""

from .cli import main

raise SystemExit(main())
