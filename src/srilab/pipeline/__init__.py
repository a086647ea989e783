"""Run, then analyse, then report: the public functions that chain :mod:`srilab.study` (configure and run),
:mod:`srilab.analysis` (read the finished run directory) and :mod:`srilab.report` (write it out) -- what
``srilab run``, ``srilab demo``, ``srilab sweep`` and ``srilab ablate`` do."""
