"""``python -m luodi.cli``."""

from luodi.cli.main import main

main()
