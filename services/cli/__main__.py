from privet.services.cli import main

main()
