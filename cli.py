"""Entry point kept at the repository root (`python cli.py ...`); the command line lives in seal.cli."""

from seal.cli import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    main()
