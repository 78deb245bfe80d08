"""`python -m cryoplan`: the command line."""

from cryoplan.cli import main

if __name__ == "__main__":
    main()
