from .hub import main

main()
