from lenet_cli.cli import main

main()
