import KeelPoolCommands

// keel-pool's whole command line lives in KeelPoolCommands, which `keel pool` runs too.
KeelPoolCommand.main()
