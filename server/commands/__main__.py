"""``python -m pixline.server.commands``: the ``pixline`` command."""
import sys

from .cli import main

sys.exit(main())
