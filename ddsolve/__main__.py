"""``python -m ddsolve`` runs the command line."""

import sys

from ddsolve.app.cli import main

sys.exit(main())
