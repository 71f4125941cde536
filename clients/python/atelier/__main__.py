"""`python -m atelier`: the command line (needs the `cli` extra)."""

import sys

from atelier._cli import main

sys.exit(main())
