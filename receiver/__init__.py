"""The process edge: Starlette app, routes, CLI, startup and shutdown. Thin by design."""
