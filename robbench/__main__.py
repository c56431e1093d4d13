"""`python -m robbench`: the same CLI as the `robbench` console script."""

from robbench.cli.app import main

if __name__ == "__main__":
    main()
