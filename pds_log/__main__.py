from pds_log.cli import main

main()
