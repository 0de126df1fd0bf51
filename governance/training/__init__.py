"""Training jobs: submission against the ledger, the queue, and how a job ends."""
