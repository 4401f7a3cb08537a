"""`python -m finfocus.cli`: the same command line as the `finfocus` script."""

from finfocus.cli import main

if __name__ == "__main__":
    main()
