"""``python -m robbench.cli``."""

from robbench.cli.app import main

main()
