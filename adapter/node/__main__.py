"""``python -m adapter.node``: same as the ``canal-adapter`` command."""

import sys

from adapter.node.main import main

sys.exit(main())
