"""Job families: what each kind of job does on the control plane (enqueue checks, before/after hooks)."""
