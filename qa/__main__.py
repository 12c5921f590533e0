"""``python -m qa`` is the ``qa`` command."""

from qa.cli import main

raise SystemExit(main())
