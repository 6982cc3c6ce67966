"""What every edge (API, UI, CLI, worker) calls: one function per use case, no SQL and no HTTP."""
