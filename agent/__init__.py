"""diag-agent: runs the check library on a customer host and spools every result.

Modules: :mod:`agent.config` (YAML → typed models), :mod:`agent.runner` (one check,
isolated), :mod:`agent.scheduler` (the daemon's loop), :mod:`agent.spool` (the on-disk
store-and-forward queue), :mod:`agent.cli` (the ``diag-agent`` command).
Importing this package is cheap: it imports nothing.
"""

__version__ = "0.1.0"
