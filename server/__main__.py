from debrief.server.cli.main import main

main()
