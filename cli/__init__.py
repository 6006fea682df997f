"""`corral`: the command line of Corral's tenant and operator APIs (cli.main)."""
