"""Domain and adapters: settings, crypto, events, model, planner, clients, store. No Starlette."""
