"""HTTP: the API client (auth, limits, retries), file downloads, and redaction."""
