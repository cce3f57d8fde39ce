"""``python -m avemo``: the ``avemo`` console script (``[project.scripts]`` in pyproject.toml), the
same entry point with the same one-line errors."""

from avemo.cli import main

if __name__ == "__main__":
    main()
