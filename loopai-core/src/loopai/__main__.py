"""``python -m loopai``: the same as the ``loopai`` command."""

from loopai._cli import main

raise SystemExit(main())
