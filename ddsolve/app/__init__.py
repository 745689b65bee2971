"""The command line and the output contract: config resolution, the ``ddsolve`` command
(subcommands discovered through the ``ddsolve.commands`` entry-point group), the run
lifecycle shared by every command, the PDE runner, the output directory and its
reader, and the figures."""
