import sys

from mlops.stack.router.server import main

sys.exit(main())
