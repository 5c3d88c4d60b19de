"""``python -m seele_agents`` is the ``seele`` command."""

import sys

from seele_agents.cli import main

sys.exit(main())
