"""``python -m avemo.cli`` (as ``torchrun ... -m avemo.cli train``): the ``avemo`` console script."""

from avemo.cli import main

if __name__ == "__main__":
    main()
