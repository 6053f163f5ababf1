"""Notifications: the outbox's worker and its channels (issue 20).

After the **log** step: the store writes a notification row in the transaction of the
event it reports (``store.outbox``); here ``worker`` delivers it with retries and records
every attempt on the chain, ``channels`` sends one message (webhook, e-mail, chat) and
``message`` says what a message holds and signs it (pure).
"""
