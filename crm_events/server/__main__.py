from crm_events.server.cli import main

main()
