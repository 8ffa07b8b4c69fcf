"""python -m fastdeconv: the command line (see fastdeconv.cli)."""

from .cli import entry

entry()
