"""Events: every change a consumer may follow (realtime streams, webhooks), written to an outbox in the
transaction of the change, numbered per organization, described once in the catalogue."""
