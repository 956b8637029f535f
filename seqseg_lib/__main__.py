import sys

from seqseg_lib.cli import main

sys.exit(main())
