"""``python -m loopai``: the same as the ``loopai`` command."""

from loopai.cli import main

raise SystemExit(main())
