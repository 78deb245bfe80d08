from cryoplan.cli import main

main()
