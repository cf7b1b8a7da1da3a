"""Node queries: one bounded SSH command that reads from a node and answers at once (docs/node-queries.md).

No job, no lock, no state change in the control plane: a query runs beside any job, bounded by a hard
deadline that kills its connection, and leaves one audit row (who, what, when, result code).
ssh.py runs the command; queries.py resolves the target in the database, builds the argv from a
whitelist and parses the answer.
"""
