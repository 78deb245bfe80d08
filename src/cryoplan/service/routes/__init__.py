"""Routes of the case review service: `api` (JSON under /api/) and `pages` (HTML)."""
