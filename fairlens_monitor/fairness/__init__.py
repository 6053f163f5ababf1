"""Fairness statistics on count tables: the pure core of **measure**.

simulate/read → **measure** → detect → alert → log. Everything here is a function of a
small table of counts (applicants, approvals, ground-truth labels per group): the two-group
metrics and column checks (``metrics``), one comparison with its interval and test
(``stats``, ``intervals``), k groups, intersections and multiplicity (``groups``), the
ground-truth error rates (``outcomes``), the one count-table model (``counts``), score
metrics (``scores``), the stratified explanation of a gap (``explain``) and an assessment
as plain data (``report``). ``cells`` is the one rule from a cell to its text, ``words``
that rule for one text without pandas (``measure`` judges a plain CSV without loading it:
``stats``, ``intervals``, ``outcomes``, ``report`` and ``words`` need no pandas, ``groups``
and ``codecounts`` import it only inside the functions that need it).

May import: ``fairlens_monitor.errors``, ``fairlens_monitor.security`` (masking only, so an
error message describes a value's form, never the value), numpy, pandas, scipy. No I/O, no
clock, no randomness that is not passed in.
"""
