"""``python -m workbench ARGS``: the ``workbench`` command, for an environment whose scripts folder is not on
PATH (or to be sure which interpreter runs it)."""
from workbench.cli import run

if __name__ == "__main__":
    run()
