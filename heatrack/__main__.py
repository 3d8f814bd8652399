import sys

from heatrack.cli import main

sys.exit(main())
