"""The ``provisioning`` command line: one module per command group."""
