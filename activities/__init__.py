"""Activities: thin adapters for the side effects of workflows (email, the state store)."""
