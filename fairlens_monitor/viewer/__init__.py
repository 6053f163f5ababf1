"""The risk officer's read-only trend page (Streamlit) and its queries.

Reads what the **log** step stored; never writes. ``page`` is the Streamlit script
(``streamlit run fairlens_monitor/viewer/page.py``, or ``fairlens-monitor view``), ``data``
its read-only, downsampled queries, ``rows`` the digest check of the rows it shows.

May import: every layer below the CLI (``ops`` for opening resources, ``store``,
``audit``, ``config``, ``fairness``, ``security``, ``errors``); never ``cli``.
"""
