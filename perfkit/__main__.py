from perfkit.entry import main

main()
