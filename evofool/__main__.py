import sys

from evofool.cli import main

sys.exit(main())
