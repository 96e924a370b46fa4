"""``python -m emma_fusion`` runs the ``emma`` command."""

from .cli import main

main()
