"""``python -m carteiro`` is the same as the ``carteiro`` command."""

from carteiro.cli.main import main

if __name__ == "__main__":
    main()
