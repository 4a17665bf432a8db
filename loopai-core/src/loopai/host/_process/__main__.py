"""``python -m loopai.host._process READ_FD WRITE_FD``: an isolated plugin's worker process (see ``_worker``)."""

from loopai.host._process._worker import main

main()
