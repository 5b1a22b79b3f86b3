"""SalesExec webhooks: a receiver that stores deliveries durably in an inbox, and a sensor
that turns the stored events into runs of exactly the partitions they touch.

- ``payloads``: what a delivery may hold, validated against the API contract;
- ``settings``: the receiver's route and address, and the shared secret;
- ``inbox``: the SQLite inbox (WAL, fsync on commit, one row per distinct event);
- ``receiver``: the ASGI service (Starlette on uvicorn) that fills the inbox;
- ``mapping``: event -> report partitions, as data and pure functions;
- ``sensor``: the Dagster sensor ``salesexec_webhook_events``;
- ``subscriptions`` and ``cli``: ``salesexec webhooks serve|subscribe|list|delete``.

The receiver never opens the warehouse: it owns only its inbox.
"""
