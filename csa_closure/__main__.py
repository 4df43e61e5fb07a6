from csa_closure.cli import main

main()
