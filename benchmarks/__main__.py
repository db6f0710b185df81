"""`python -m benchmarks NAME [ARGS]` from the checkout's root: the same as `gridbot bench NAME`."""

import sys

from benchmarks import main, names

if len(sys.argv) < 2:
    print("\n".join(names()))
    sys.exit(0)
sys.exit(main(sys.argv[1], sys.argv[2:]))
