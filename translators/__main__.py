"""``python -m translators``: see translators/cli.py."""

from translators.cli import main

raise SystemExit(main())
