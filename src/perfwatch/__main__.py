from perfwatch.cli import main

main()
