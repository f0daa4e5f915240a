import sys

from mlops.stack.triton.server import main

sys.exit(main())
