"""`python -m bench`: see bench/_cli.py for the options."""

from bench._cli import main

if __name__ == "__main__":
    main()
