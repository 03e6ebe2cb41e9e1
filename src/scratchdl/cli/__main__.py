"""``python -m scratchdl.cli``: the scratchdl command, as the installed entry point runs it."""

import sys

from . import main

sys.exit(main())
