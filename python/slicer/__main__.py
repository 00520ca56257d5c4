"""``python -m slicer``: the command line (also ``python -m slicer --cmake-dir``)."""

import sys

from .cli import main

sys.exit(main())
