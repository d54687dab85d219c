"""``python -m cspdet``: the cspdet command."""

import sys

from cspdet.cli import main

sys.exit(main())
