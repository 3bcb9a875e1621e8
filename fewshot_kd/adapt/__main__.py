"""``python -m fewshot_kd.adapt``: few-shot compression from the command line (see ``--help``)."""

from fewshot_kd.adapt.cli import main

if __name__ == "__main__":
    main()
