"""`python -m server` is `atelier-server serve`."""

import sys

from server.commands import main

main(["serve", *sys.argv[1:]])
