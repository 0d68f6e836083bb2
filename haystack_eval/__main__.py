"""``python -m haystack_eval`` runs the command-line interface."""

from haystack_eval.cli import main

main()
