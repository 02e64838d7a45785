#!/usr/bin/env python3
"""Sillage: play the default patch with the default model, or see --help."""

import sys

from instrument.cli import main

if __name__ == "__main__":
    sys.exit(main())
