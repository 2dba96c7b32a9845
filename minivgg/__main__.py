import sys

from .cli import main

if __name__ == "__main__":  # not when a spawned worker process (the studio's) re-imports it
    sys.exit(main())
