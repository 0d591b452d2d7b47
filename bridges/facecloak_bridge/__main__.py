"""``python -m facecloak_bridge``: the same as ``facecloak-client``."""

import sys

from facecloak_bridge.cli import main

sys.exit(main())
