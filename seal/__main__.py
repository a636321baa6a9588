"""`python -m seal`: the same command line as `seal`."""

from seal.cli import main

if __name__ == "__main__":
    main()
