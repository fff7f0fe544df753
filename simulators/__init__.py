"""Faithful fake WeCom and Authing servers (real HTTP) for tests, the demo and benchmarks.

They are separate from the product: nothing in ``sync_core`` or ``receiver`` imports them,
except the CLI's ``simulate`` and ``demo`` commands.
"""
