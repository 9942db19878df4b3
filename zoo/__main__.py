"""`python -m zoo` is the `zoo` command; torchrun starts workers this way (`torchrun ... -m zoo run`)."""

from .cli import main

main()
