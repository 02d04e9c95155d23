"""The HTTP service: the falcon app, its resources, and what only requests need (upload reading,
URL signing and steps, render slots, single-flight, HTTP metrics). See docs/architecture.md."""
