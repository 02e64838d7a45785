"""``python -m instrument.companion [--check]``: regenerate (or check) docs and companion patches."""

import sys

from instrument.companion import main

sys.exit(main())
