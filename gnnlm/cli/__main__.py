import sys

from gnnlm.cli import main

sys.exit(main())
