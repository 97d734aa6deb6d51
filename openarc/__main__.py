import sys

from openarc.cli import main

sys.exit(main())
