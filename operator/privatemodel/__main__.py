from privatemodel.cli import main

main()
