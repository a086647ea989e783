"""The analysis of a finished run, from its run directory alone (the run never imports it): the summary
(:mod:`~srilab.analysis.summary`), detection and whether it sees success (``detection``, ``success``), the SRI
guard's variants, diagnosis and topic rotation (``guard_variants``, ``guard_diagnosis``, ``guard_rotation``), the
claim table (``claims``, ``claim_tests``), the knowledge ceiling's figures (``knowledge``) and the ablations'
figures (``ablations``). :mod:`srilab.report` renders what it returns."""
