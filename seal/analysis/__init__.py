"""Read-only analyses over the store; each returns a result object with to_json() and a text rendering."""
