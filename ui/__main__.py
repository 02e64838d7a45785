"""``python -m ui``: see :mod:`ui.app`."""

from ui.app import main

main()
