"""``python -m coinstream``: the same command line as the ``coinstream`` script."""

from coinstream.cli import app

if __name__ == "__main__":
    app()
