"""``python -m app.cli``: the same program as the ``scpln`` console script."""

from app.cli.main import main

main()
