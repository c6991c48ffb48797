"""``python -m gnnlm ...``: the same command line as ``gnnlm ...``."""

from gnnlm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
