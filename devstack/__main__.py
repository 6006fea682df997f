"""`python -m devstack` is `make run`: Corral on this machine, in the foreground."""

import sys

from devstack.run import main

sys.exit(main())
