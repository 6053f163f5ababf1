"""Security primitives: key files, Fernet and Ed25519, pseudonyms, masking, passwords.

Used by every step that touches a secret or could leak data: the **alert** step encrypts
explanations (``crypto``), the **log** step signs checkpoints (``crypto``), readers open
files without following a swapped symlink or blocking on a FIFO (``safefiles``), log lines
and error texts are masked (``masking``) and scrubbed of database passwords
(``passwords``), applicant ids become keyed pseudonyms (``pseudonyms``), and the page is
gated by a token (``page_auth``).

May import: ``fairlens_monitor.errors``, the standard library, ``cryptography``. Nothing
else of the package: every other layer may import this one.
"""
