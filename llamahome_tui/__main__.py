"""``python -m llamahome_tui`` runs the command line."""

import sys

from llamahome_tui.cli import main

sys.exit(main())
