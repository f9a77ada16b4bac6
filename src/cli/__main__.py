"""`python -m headwater.cli ...`: the same as the `headwater` command."""

import sys

from ._main import main

sys.exit(main())
