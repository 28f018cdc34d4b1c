from sprongus.entrypoints.cli.root import main

main()
